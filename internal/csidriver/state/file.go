package state

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"volplane/internal/atomicfile"
)

// FileStore is the Store kept as one JSON file per record under a root
// directory: volumes/<id>.json, snapshots/<id>.json, groups/<id>.json.
// One file per record keeps every change O(1) in bytes written, however
// many volumes the pool holds.
type FileStore struct {
	root      string
	volumes   *table[Volume]
	snapshots *table[Snapshot]
	groups    *table[Group]
}

var _ Store = (*FileStore)(nil)

// OpenFileStore loads every record under root, creating the directories on
// first use. Temporary files left by a crash during a write are removed; a
// record that does not parse is an error (it cannot come from a crash, so
// it is damage that needs a human).
func OpenFileStore(root string) (*FileStore, error) {
	s := &FileStore{root: root}
	var err error
	if s.volumes, err = openTable(filepath.Join(root, "volumes"),
		func(v *Volume) (string, string) { return v.ID, v.Name }, Volume.Clone); err != nil {
		return nil, err
	}
	if s.snapshots, err = openTable(filepath.Join(root, "snapshots"),
		func(v *Snapshot) (string, string) { return v.ID, v.Name }, Snapshot.Clone); err != nil {
		return nil, err
	}
	if s.groups, err = openTable(filepath.Join(root, "groups"),
		func(v *Group) (string, string) { return v.ID, v.Name }, Group.Clone); err != nil {
		return nil, err
	}
	return s, nil
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
	dir   string
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

func openTable[T any](dir string, keys func(*T) (string, string), clone func(T) T) (*table[T], error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	t := &table[T]{dir: dir, keys: keys, clone: clone, byID: map[string]*T{}, names: map[string]string{}, writing: map[string]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".tmp") {
			// A write that crashed before its rename: the old record,
			// if any, is still in place.
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
	data, err := json.MarshalIndent(rec, "", "  ")
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
	err = writeAtomic(t.dir, id+".json", data)
	t.mu.Lock()
	defer t.mu.Unlock()
	if name != "" {
		delete(t.writing, name)
	}
	if err != nil {
		return err
	}
	if old, ok := t.byID[id]; ok {
		if _, oldName := t.keys(old); oldName != name {
			delete(t.names, oldName)
		}
	} else {
		t.sorted = nil
	}
	stored := t.clone(*rec)
	t.byID[id] = &stored
	if name != "" {
		t.names[name] = id
	}
	return nil
}

func (t *table[T]) delete(id string) error {
	defer t.lockRecord(id)()
	t.mu.RLock()
	_, ok := t.byID[id]
	t.mu.RUnlock()
	if !ok {
		return nil
	}
	if err := os.Remove(filepath.Join(t.dir, id+".json")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	if err := syncDir(t.dir); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, ok := t.byID[id]
	if !ok {
		return nil
	}
	if _, name := t.keys(rec); name != "" && t.names[name] == id {
		delete(t.names, name)
	}
	delete(t.byID, id)
	t.sorted = nil
	return nil
}

// writeAtomic replaces dir/name with data: temporary file, fsync, rename,
// fsync of the directory.
func writeAtomic(dir, name string, data []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, name), data); err != nil {
		return fmt.Errorf("write record %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}
