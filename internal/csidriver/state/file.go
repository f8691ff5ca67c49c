package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"volplane/internal/atomicfile"
)

// FileStore is the Store kept as one JSON file per record under a root
// directory, volumes/<id>.json, snapshots/<id>.json, groups/<id>.json,
// and a journal of the changes not yet folded into them (journal.go).
// One file per record keeps every change O(1) in bytes written, however
// many volumes the pool holds.
type FileStore struct {
	root      string
	volumes   *table[Volume]
	snapshots *table[Snapshot]
	groups    *table[Group]
	tables    map[string]folder

	journal *journal
	// foldAt is the journal size that starts a fold (foldBytes).
	foldAt int64
	// foldMu makes folds one at a time; unfolded are the journals
	// rotated away and not yet folded, oldest first, with the records
	// each changed.
	foldMu   sync.Mutex
	folding  atomic.Bool
	unfolded []rotated
}

// rotated is a journal that no longer takes entries.
type rotated struct {
	n       uint64
	changed map[entryKey]struct{}
}

// folder is what the store's journal and folds need of a table.
type folder interface {
	apply(e entry) error
	foldRecord(id string) error
	syncDir() error
}

var _ Store = (*FileStore)(nil)

// OpenFileStore loads every record under root, creating the directories on
// first use, replays the journals left over and folds them into the
// record files. Temporary files left by a crash during a fold are
// removed; a record that does not parse is an error (it cannot come from
// a crash, so it is damage that needs a human).
func OpenFileStore(root string) (*FileStore, error) {
	s := &FileStore{root: root, foldAt: foldBytes}
	var err error
	if s.volumes, err = openTable(s, filepath.Join(root, "volumes"),
		func(v *Volume) (string, string) { return v.ID, v.Name }, Volume.Clone); err != nil {
		return nil, err
	}
	if s.snapshots, err = openTable(s, filepath.Join(root, "snapshots"),
		func(v *Snapshot) (string, string) { return v.ID, v.Name }, Snapshot.Clone); err != nil {
		return nil, err
	}
	if s.groups, err = openTable(s, filepath.Join(root, "groups"),
		func(v *Group) (string, string) { return v.ID, v.Name }, Group.Clone); err != nil {
		return nil, err
	}
	s.tables = map[string]folder{s.volumes.name: s.volumes, s.snapshots.name: s.snapshots, s.groups.name: s.groups}
	if err := s.replay(); err != nil {
		return nil, err
	}
	return s, nil
}

// replay applies every journal under root, oldest first, folds them into
// the record files, removes them and opens a new one.
func (s *FileStore) replay() error {
	ns, err := journalFiles(s.root)
	if err != nil {
		return err
	}
	var next uint64
	for _, n := range ns {
		entries, err := readJournal(s.root, n)
		if err != nil {
			return err
		}
		changed := map[entryKey]struct{}{}
		for _, e := range entries {
			t, ok := s.tables[e.Table]
			if !ok {
				return fmt.Errorf("journal %s names table %q, which does not exist", journalPath(s.root, n), e.Table)
			}
			if err := t.apply(e); err != nil {
				return fmt.Errorf("journal %s: %w", journalPath(s.root, n), err)
			}
			changed[entryKey{e.Table, e.ID}] = struct{}{}
		}
		s.unfolded = append(s.unfolded, rotated{n: n, changed: changed})
		next = n + 1
	}
	if err := s.foldRotated(); err != nil {
		return err
	}
	s.journal, err = newJournal(s.root, next)
	return err
}

// log makes e durable in the journal, and starts a fold in the
// background once the journal is large.
func (s *FileStore) log(e entry) error {
	size, err := s.journal.append(e)
	if err != nil {
		return err
	}
	if size >= s.foldAt && s.folding.CompareAndSwap(false, true) {
		go func() {
			defer s.folding.Store(false)
			// A fold that fails is tried again by the next one; the
			// journal keeps every change meanwhile.
			if err := s.fold(); err != nil {
				slog.Default().Error("folding the driver's journal into its record files; tried again at the next fold", "dir", s.root, "err", err)
			}
		}()
	}
	return nil
}

// Fold implements Store.
func (s *FileStore) Fold() error { return s.fold() }

// fold rotates the journal and folds every rotated journal into the
// record files.
func (s *FileStore) fold() error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	n, changed, err := s.journal.rotate()
	if err != nil {
		return err
	}
	s.unfolded = append(s.unfolded, rotated{n: n, changed: changed})
	return s.foldRotatedLocked()
}

func (s *FileStore) foldRotated() error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	return s.foldRotatedLocked()
}

// foldRotatedLocked writes the records each rotated journal changed from
// memory (each once, whatever its number of entries), syncs the tables'
// directories and removes the journals, oldest first: a journal goes only
// once every older one is gone, so a replay never applies an older
// change over a newer record file.
func (s *FileStore) foldRotatedLocked() error {
	for len(s.unfolded) > 0 {
		r := s.unfolded[0]
		dirs := map[string]bool{}
		for k := range r.changed {
			if err := s.tables[k.table].foldRecord(k.id); err != nil {
				return err
			}
			dirs[k.table] = true
		}
		for name := range dirs {
			if err := s.tables[name].syncDir(); err != nil {
				return err
			}
		}
		if err := os.Remove(journalPath(s.root, r.n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove folded journal: %w", err)
		}
		if err := syncDir(s.root); err != nil {
			return err
		}
		s.unfolded = s.unfolded[1:]
	}
	return nil
}

func (s *FileStore) GetVolume(id string) (Volume, error)      { return s.volumes.get(id) }
func (s *FileStore) VolumeByName(name string) (Volume, error) { return s.volumes.byName(name) }
func (s *FileStore) ListVolumes() []Volume                    { return s.volumes.list() }
func (s *FileStore) VisitVolumes(fn func(*Volume))            { s.volumes.visit(fn) }
func (s *FileStore) PutVolume(v Volume) error                 { return s.volumes.put(&v) }
func (s *FileStore) DeleteVolume(id string) error             { return s.volumes.delete(id) }

func (s *FileStore) GetSnapshot(id string) (Snapshot, error)      { return s.snapshots.get(id) }
func (s *FileStore) SnapshotByName(name string) (Snapshot, error) { return s.snapshots.byName(name) }
func (s *FileStore) ListSnapshots() []Snapshot                    { return s.snapshots.list() }
func (s *FileStore) PutSnapshot(v Snapshot) error                 { return s.snapshots.put(&v) }
func (s *FileStore) DeleteSnapshot(id string) error               { return s.snapshots.delete(id) }

func (s *FileStore) GetGroup(id string) (Group, error)      { return s.groups.get(id) }
func (s *FileStore) GroupByName(name string) (Group, error) { return s.groups.byName(name) }
func (s *FileStore) ListGroups() []Group                    { return s.groups.list() }
func (s *FileStore) PutGroup(v Group) error                 { return s.groups.put(&v) }
func (s *FileStore) DeleteGroup(id string) error            { return s.groups.delete(id) }

// DiskUsage implements Store: the allocated size of every file and
// directory under the root.
func (s *FileStore) DiskUsage() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += allocated(info)
		return nil
	})
	return total, err
}

var validID = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// table is one kind of record, kept decoded in memory; every read hands
// out a deep copy (clone), every write goes to disk first.
//
// Writes of different records run in parallel: mu guards only memory and
// is not held across a file's write and fsyncs (held, it made every
// record's write wait for all the others': ~10-30 ms each on a loaded
// disk, which capped CreateVolume, two writes, at ~15/s whatever the
// number of callers). The writes of one record stay in order under its
// stripe of recordMu, and a name is reserved (writing) while the record
// that takes it is written, so two IDs cannot both be given one name.
type table[T any] struct {
	store *FileStore
	dir   string
	name  string // the directory's base name, the journal's name for it
	keys  func(*T) (id, name string)
	clone func(T) T

	recordMu [64]sync.Mutex // by hash of the ID

	mu      sync.RWMutex
	byID    map[string]*T
	names   map[string]string // name -> id
	writing map[string]string // name -> id of a write in flight
	sorted  []string          // IDs, sorted; nil when stale
}

// lockRecord serialises the writes of record id.
func (t *table[T]) lockRecord(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &t.recordMu[h.Sum32()%uint32(len(t.recordMu))]
	m.Lock()
	return m.Unlock
}

func openTable[T any](s *FileStore, dir string, keys func(*T) (string, string), clone func(T) T) (*table[T], error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	t := &table[T]{store: s, dir: dir, name: filepath.Base(dir), keys: keys, clone: clone,
		byID: map[string]*T{}, names: map[string]string{}, writing: map[string]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".tmp") {
			// A fold that crashed before its rename: the old record, if
			// any, is still in place, and the journal still holds the
			// new one.
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("remove interrupted write: %w", err)
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		var rec T
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("record %s is damaged: %w", path, err)
		}
		id, rname := keys(&rec)
		if id+".json" != name {
			return nil, fmt.Errorf("record %s holds ID %q", path, id)
		}
		t.byID[id] = &rec
		if rname != "" {
			t.names[rname] = id
		}
	}
	return t, nil
}

func (t *table[T]) get(id string) (T, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rec, ok := t.byID[id]
	if !ok {
		var zero T
		return zero, fmt.Errorf("%s %q: %w", filepath.Base(t.dir), id, ErrNotFound)
	}
	return t.clone(*rec), nil
}

func (t *table[T]) byName(name string) (T, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	id, ok := t.names[name]
	if !ok || name == "" {
		var zero T
		return zero, fmt.Errorf("%s named %q: %w", filepath.Base(t.dir), name, ErrNotFound)
	}
	return t.clone(*t.byID[id]), nil
}

func (t *table[T]) list() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sorted == nil {
		t.sorted = make([]string, 0, len(t.byID))
		for id := range t.byID {
			t.sorted = append(t.sorted, id)
		}
		sort.Strings(t.sorted)
	}
	out := make([]T, len(t.sorted))
	for i, id := range t.sorted {
		out[i] = t.clone(*t.byID[id])
	}
	return out
}

// visit calls fn on every record in place, under the read lock.
func (t *table[T]) visit(fn func(*T)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, rec := range t.byID {
		fn(rec)
	}
}

func (t *table[T]) put(rec *T) error {
	id, name := t.keys(rec)
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid record ID %q", id)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", id, err)
	}
	defer t.lockRecord(id)()
	t.mu.Lock()
	if name != "" {
		other, ok := t.names[name]
		if !ok {
			other, ok = t.writing[name]
		}
		if ok && other != id {
			t.mu.Unlock()
			return fmt.Errorf("%s name %q is held by %q: %w", filepath.Base(t.dir), name, other, ErrAlreadyExists)
		}
		t.writing[name] = id
	}
	t.mu.Unlock()
	err = t.store.log(entry{Table: t.name, ID: id, Record: data})
	t.mu.Lock()
	defer t.mu.Unlock()
	if name != "" {
		delete(t.writing, name)
	}
	if err != nil {
		return err
	}
	stored := t.clone(*rec)
	t.set(id, &stored)
	return nil
}

// set stores rec as id's record, with t.mu held.
func (t *table[T]) set(id string, rec *T) {
	if old, ok := t.byID[id]; ok {
		if _, oldName := t.keys(old); oldName != "" && t.names[oldName] == id {
			delete(t.names, oldName)
		}
	} else {
		t.sorted = nil
	}
	t.byID[id] = rec
	if _, name := t.keys(rec); name != "" {
		t.names[name] = id
	}
}

// remove forgets id's record, with t.mu held.
func (t *table[T]) remove(id string) {
	rec, ok := t.byID[id]
	if !ok {
		return
	}
	if _, name := t.keys(rec); name != "" && t.names[name] == id {
		delete(t.names, name)
	}
	delete(t.byID, id)
	t.sorted = nil
}

func (t *table[T]) delete(id string) error {
	defer t.lockRecord(id)()
	t.mu.RLock()
	_, ok := t.byID[id]
	t.mu.RUnlock()
	if !ok {
		return nil
	}
	if err := t.store.log(entry{Table: t.name, ID: id}); err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(id)
	return nil
}

// apply replays a journal entry at open.
func (t *table[T]) apply(e entry) error {
	if e.Record == nil {
		t.remove(e.ID)
		return nil
	}
	var rec T
	if err := json.Unmarshal(e.Record, &rec); err != nil {
		return fmt.Errorf("%s record %s: %w", t.name, e.ID, err)
	}
	if id, _ := t.keys(&rec); id != e.ID {
		return fmt.Errorf("%s entry of %s holds ID %q", t.name, e.ID, id)
	}
	t.set(e.ID, &rec)
	return nil
}

// foldRecord brings id's file up to date with its record in memory:
// written (temporary file, fsync, rename) or removed. The caller syncs
// the directory.
func (t *table[T]) foldRecord(id string) error {
	defer t.lockRecord(id)()
	t.mu.RLock()
	rec, ok := t.byID[id]
	var data []byte
	var err error
	if ok {
		data, err = json.MarshalIndent(rec, "", "  ")
	}
	t.mu.RUnlock()
	path := filepath.Join(t.dir, id+".json")
	switch {
	case err != nil:
		return fmt.Errorf("encode record %s: %w", id, err)
	case !ok:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete record %s: %w", id, err)
		}
		return nil
	}
	if err := atomicfile.WriteNoDirSync(path, data); err != nil {
		return fmt.Errorf("write record %s: %w", id, err)
	}
	return nil
}

func (t *table[T]) syncDir() error { return syncDir(t.dir) }

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}
