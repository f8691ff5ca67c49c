package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// mustOpen opens the store under dir.
func mustOpen(t *testing.T, dir string) *FileStore {
	t.Helper()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// journals lists the journal files under dir.
func journals(t *testing.T, dir string) []uint64 {
	t.Helper()
	ns, err := journalFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// A store that stops without folding (a crash) leaves its changes in
// the journal only; the next open replays them, writes the record files
// and starts an empty journal.
func TestFileStoreReplaysJournal(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	for i, phase := range []Phase{Creating, Ready} {
		if err := s.PutVolume(Volume{ID: "v-1", Name: "pvc-1", Phase: phase, CapacityBytes: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutVolume(Volume{ID: "v-2", Name: "pvc-2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVolume("v-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSnapshot(Snapshot{ID: "s-1", Name: "snap", SourceVolumeID: "v-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes", "v-1.json")); !os.IsNotExist(err) {
		t.Fatalf("a put wrote its record file before a fold: %v", err)
	}

	s2 := mustOpen(t, dir)
	if v, err := s2.GetVolume("v-1"); err != nil || v.Phase != Ready || v.CapacityBytes != 2 {
		t.Fatalf("v-1 after replay: %+v, %v", v, err)
	}
	if _, err := s2.VolumeByName("pvc-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted v-2 after replay: %v", err)
	}
	if _, err := s2.GetSnapshot("s-1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"volumes/v-1.json", "snapshots/s-1.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("open did not fold %s: %v", f, err)
		}
	}
	if ns := journals(t, dir); len(ns) != 1 || ns[0] != 1 {
		t.Fatalf("journals after open: %v, want the new, empty journal-1", ns)
	}
	if fi, err := os.Stat(journalPath(dir, 1)); err != nil || fi.Size() != 0 {
		t.Fatalf("new journal: %v, %v", fi, err)
	}
	// The record files alone (no journal) hold the same.
	if err := os.Remove(journalPath(dir, 1)); err != nil {
		t.Fatal(err)
	}
	s3 := mustOpen(t, dir)
	if v, err := s3.GetVolume("v-1"); err != nil || v.Phase != Ready {
		t.Fatalf("v-1 from its record file: %+v, %v", v, err)
	}
	if n := len(s3.ListVolumes()); n != 1 {
		t.Fatalf("%d volumes from the record files, want 1", n)
	}
}

// A crash tears at most the end of the newest journal; what came before
// the torn frame is kept.
func TestFileStoreTornJournal(t *testing.T) {
	for name, tail := range map[string]func(frame []byte) []byte{
		"cut short":      func(f []byte) []byte { return f[:len(f)-3] },
		"header only":    func(f []byte) []byte { return f[:5] },
		"bad checksum":   func(f []byte) []byte { g := append([]byte(nil), f...); g[len(g)-2] ^= 0xff; return g },
		"zeros":          func(f []byte) []byte { return make([]byte, 64) },
		"length too big": func(f []byte) []byte { g := append([]byte(nil), f...); g[3] = 0x7f; return g },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir)
			if err := s.PutVolume(Volume{ID: "v-1", Name: "a", CapacityBytes: 1}); err != nil {
				t.Fatal(err)
			}
			frame := appendFrame(nil, []byte(`{"table":"volumes","id":"v-2","record":{"id":"v-2","name":"b"}}`))
			f, err := os.OpenFile(journalPath(dir, 0), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tail(frame)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			s2, err := OpenFileStore(dir)
			if err != nil {
				t.Fatalf("open after a torn journal: %v", err)
			}
			if v, err := s2.GetVolume("v-1"); err != nil || v.CapacityBytes != 1 {
				t.Fatalf("entry before the torn frame: %+v, %v", v, err)
			}
			if _, err := s2.GetVolume("v-2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the torn entry was applied: %v", err)
			}
		})
	}
}

// A crash during a fold leaves the rotated journal beside record files
// that may already be newer than it: replaying it, then the journals
// after it, ends at the newest record all the same.
func TestFileStoreCrashDuringFold(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	if err := s.PutVolume(Volume{ID: "v-1", Name: "a", Phase: Creating}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVolume(Volume{ID: "v-2", Name: "b"}); err != nil {
		t.Fatal(err)
	}
	// The fold's rotation, then the crash before it wrote anything.
	if _, _, err := s.journal.rotate(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVolume(Volume{ID: "v-1", Name: "a", Phase: Ready}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVolume("v-2"); err != nil {
		t.Fatal(err)
	}
	// The fold wrote v-1's file from memory (already Ready) and removed
	// v-2's, then the process died.
	if err := s.volumes.foldRecord("v-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.volumes.foldRecord("v-2"); err != nil {
		t.Fatal(err)
	}
	if ns := journals(t, dir); len(ns) != 2 {
		t.Fatalf("journals before the reopen: %v, want two", ns)
	}
	s2 := mustOpen(t, dir)
	if v, err := s2.GetVolume("v-1"); err != nil || v.Phase != Ready {
		t.Fatalf("v-1: %+v, %v; want Ready", v, err)
	}
	if _, err := s2.GetVolume("v-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("v-2 came back: %v", err)
	}
}

// Writes waiting while a batch is written go out together in the next
// one: one write and one fdatasync for all of them.
func TestJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	j := s.journal
	j.mu.Lock()
	j.flushing = true // as if a batch were being written
	j.mu.Unlock()
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.PutVolume(Volume{ID: fmt.Sprintf("v-%d", i), Name: fmt.Sprintf("n-%d", i)}) })
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		j.mu.Lock()
		waiting := len(j.cur.keys)
		j.mu.Unlock()
		if waiting == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes reached the journal", waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
	j.mu.Lock()
	j.flushing = false
	j.cond.Broadcast()
	j.mu.Unlock()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if j.batches != 1 {
		t.Fatalf("%d writes took %d batches, want 1", n, j.batches)
	}
	if got := len(s.ListVolumes()); got != n {
		t.Fatalf("%d volumes stored, want %d", got, n)
	}
}

// Past its size limit the journal is folded in the background: the
// record files catch up and the old journals go.
func TestFileStoreFoldsInBackground(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	s.foldAt = 1024
	for i := range 40 {
		if err := s.PutVolume(Volume{ID: fmt.Sprintf("v-%02d", i), Name: fmt.Sprintf("n-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); s.folding.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("fold did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	if ns := journals(t, dir); len(ns) != 1 || ns[0] == 0 {
		t.Fatalf("journals after the folds: %v, want one, not the first", ns)
	}
	files, err := filepath.Glob(filepath.Join(dir, "volumes", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The folds wrote every record the rotated journals held; the last
	// few may still be in the current journal only.
	if len(files) == 0 || len(files) > 40 {
		t.Fatalf("%d record files after the folds", len(files))
	}
	again := mustOpen(t, dir)
	if n := len(again.ListVolumes()); n != 40 {
		t.Fatalf("%d volumes after reopen, want 40", n)
	}
}
