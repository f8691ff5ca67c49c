package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
)

// The journal. A put or a delete is durable once its entry is in the
// journal: concurrent writes share one write and one fdatasync of it
// (group commit). Before, each write paid for its own record file: an
// fsync of the file, a rename and an fsync of the directory, about 0.5 ms
// of CPU here and a flush of the filesystem's journal that every other
// fsync on the disk, etcd's among them, waited behind. With 500 claims
// provisioned at once, the machine sat idle 10-20% of the time on those
// flushes.
//
// The record files are brought up to date from memory by a fold: when
// the journal passes foldBytes (in the background: the journal is first
// rotated to a new file, so writes go on), on a clean stop (Fold), and
// at open, after every journal left over has been replayed over the
// files. A fold writes each record changed in its journal once (a
// create's Creating and Ready are one file write), fsynced, renamed; then
// the directories are fsynced, and only then is its journal removed. A
// record file may thus be behind the store until the next fold; the
// journal never is.
//
// On disk a journal is journal-<n>.log under the store's root: frames of
// a little-endian uint32 length, a CRC-32C of the payload and the payload,
// one JSON entry. A batch is written whole and acknowledged only once it
// is synced, so a crash tears at most the end of the newest journal: a
// frame that is cut short, fails its checksum or is empty ends the
// replay of its file, and what follows it was never acknowledged.

// foldBytes is the journal size that starts a fold: about 4,500 entries
// (a volume's is about 220 bytes), a fold per 2,000-odd volumes created.
const foldBytes = 1 << 20

var (
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
	journalPattern = regexp.MustCompile(`^journal-([0-9]{1,19})\.log$`)
)

const frameHeader = 8

// entry is one change in the journal: Record is absent for a delete.
type entry struct {
	Table  string          `json:"table"`
	ID     string          `json:"id"`
	Record json.RawMessage `json:"record,omitempty"`
}

// entryKey names a record of a table.
type entryKey struct{ table, id string }

func appendFrame(buf, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	return append(append(buf, h[:]...), payload...)
}

// readFrames returns the payloads of data's intact frames up to the first
// one that is cut short or damaged.
func readFrames(data []byte) (payloads [][]byte) {
	for len(data) > 0 {
		if len(data) < frameHeader {
			return payloads
		}
		n := int(binary.LittleEndian.Uint32(data[0:]))
		sum := binary.LittleEndian.Uint32(data[4:])
		if n == 0 || n > len(data)-frameHeader {
			// No entry is empty: zeros are a file extended by a write
			// that never landed (an empty payload's CRC is 0 too).
			return payloads
		}
		p := data[frameHeader : frameHeader+n]
		if crc32.Checksum(p, castagnoli) != sum {
			return payloads
		}
		payloads = append(payloads, p)
		data = data[frameHeader+n:]
	}
	return payloads
}

// journal is the open journal file with its group commit.
type journal struct {
	root string

	mu   sync.Mutex
	cond *sync.Cond
	// The file is journal-<n>.log, opened for each batch only: an open
	// file would keep the pool's filesystem busy between writes.
	n    uint64
	size int64 // bytes written and synced
	// cur is the open batch; one writer at a time (flushing) writes a
	// batch while the next one fills.
	cur      *batch
	flushing bool
	// changed are the records with an entry in the file.
	changed map[entryKey]struct{}
	// err, once set, fails every append: the file's end is no longer
	// known.
	err error
	// batches counts the batches written.
	batches int
}

// batch is the frames written with one write and one fdatasync, the
// records they change, and their outcome once done.
type batch struct {
	buf  []byte
	keys []entryKey
	done bool
	err  error
}

func journalPath(root string, n uint64) string {
	return filepath.Join(root, "journal-"+strconv.FormatUint(n, 10)+".log")
}

// journalFiles lists the journals under root, oldest first.
func journalFiles(root string) ([]uint64, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	var ns []uint64
	for _, e := range entries {
		if m := journalPattern.FindStringSubmatch(e.Name()); m != nil {
			n, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("journal %s: %w", e.Name(), err)
			}
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// createJournal makes journal-<n>.log, empty, and syncs root so that
// the file is there after a crash before anything in it is acknowledged.
func createJournal(root string, n uint64) error {
	f, err := os.OpenFile(journalPath(root, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	return syncDir(root)
}

func newJournal(root string, n uint64) (*journal, error) {
	if err := createJournal(root, n); err != nil {
		return nil, err
	}
	j := &journal{root: root, n: n, cur: &batch{}, changed: map[entryKey]struct{}{}}
	j.cond = sync.NewCond(&j.mu)
	return j, nil
}

// append makes e durable: it returns once the batch holding it is
// written and synced, with the size of the journal file then.
func (j *journal) append(e entry) (int64, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode journal entry of %s %s: %w", e.Table, e.ID, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	b := j.cur
	b.buf = appendFrame(b.buf, payload)
	b.keys = append(b.keys, entryKey{e.Table, e.ID})
	for !b.done {
		if j.flushing {
			j.cond.Wait()
			continue
		}
		j.flushLocked()
	}
	return j.size, b.err
}

// flushLocked writes and syncs the open batch, with j.mu held (released
// during the write) and no other flush running.
func (j *journal) flushLocked() {
	b, path, broken := j.cur, journalPath(j.root, j.n), j.err
	j.cur = &batch{}
	j.flushing = true
	j.mu.Unlock()
	var err error
	if broken == nil {
		err = appendSync(path, b.buf)
	}
	j.mu.Lock()
	j.flushing = false
	b.done = true
	switch {
	case broken != nil:
		b.err = broken
	case err == nil:
		j.batches++
		j.size += int64(len(b.buf))
		for _, k := range b.keys {
			j.changed[k] = struct{}{}
		}
	default:
		b.err = fmt.Errorf("write journal %s: %w", path, err)
		// Cut off what may have reached the file; if that fails, its
		// end is unknown and nothing more may go after it.
		if terr := os.Truncate(path, j.size); terr != nil {
			j.err = fmt.Errorf("%w; truncating it after that: %w", b.err, terr)
		}
	}
	j.cond.Broadcast()
}

// appendSync appends data to path and syncs it.
func appendSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = syscall.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rotate moves appends to journal-<n+1>.log once no batch is being
// written, and returns the old file's number and the records with an
// entry in it. The open batch, not yet written, goes to the new file.
func (j *journal) rotate() (uint64, map[entryKey]struct{}, error) {
	j.mu.Lock()
	n := j.n
	j.mu.Unlock()
	if err := createJournal(j.root, n+1); err != nil {
		return 0, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.flushing {
		j.cond.Wait()
	}
	if j.err != nil {
		os.Remove(journalPath(j.root, n+1))
		return 0, nil, j.err
	}
	old, changed := j.n, j.changed
	j.n, j.size, j.changed = n+1, 0, map[entryKey]struct{}{}
	return old, changed, nil
}

// readJournal returns the entries of journal-<n>.log up to its first
// torn or damaged frame.
func readJournal(root string, n uint64) ([]entry, error) {
	data, err := os.ReadFile(journalPath(root, n))
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	payloads := readFrames(data)
	entries := make([]entry, 0, len(payloads))
	for _, p := range payloads {
		var e entry
		if err := json.Unmarshal(p, &e); err != nil {
			// Its checksum held: not a torn write but a bug or damage.
			return nil, fmt.Errorf("journal %s holds an entry that does not parse: %w", journalPath(root, n), err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
