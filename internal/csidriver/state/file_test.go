package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestFileStoreContracts(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.GetVolume("v-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetVolume of a missing ID: got %v, want ErrNotFound", err)
	}
	if _, err := s.VolumeByName("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("VolumeByName of a missing name: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteVolume("v-missing"); err != nil {
		t.Fatalf("DeleteVolume of a missing ID must succeed, got %v", err)
	}

	v := Volume{ID: "v-1", Name: "pvc-1", Kind: KindDir, Phase: Ready, CapacityBytes: 10 << 20,
		CreatedAt: time.Unix(1700000000, 0).UTC(), Parameters: map[string]string{"type": "dir"},
		Targets: map[string]Target{"/t": {ReadOnly: true}}}
	if err := s.PutVolume(v); err != nil {
		t.Fatal(err)
	}
	got, err := s.VolumeByName("pvc-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip: got %+v, want %+v", got, v)
	}

	// Copies: changing what Get returned changes nothing stored.
	got.Parameters["type"] = "block"
	got.Targets["/other"] = Target{}
	again, _ := s.GetVolume("v-1")
	if again.Parameters["type"] != "dir" || len(again.Targets) != 1 {
		t.Fatalf("store shares memory with a returned record: %+v", again)
	}

	// Names are unique per kind.
	dup := v
	dup.ID = "v-2"
	if err := s.PutVolume(dup); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second volume with the same name: got %v, want ErrAlreadyExists", err)
	}
	// ...but a snapshot may carry a volume's name.
	if err := s.PutSnapshot(Snapshot{ID: "s-1", Name: "pvc-1", SourceVolumeID: "v-1"}); err != nil {
		t.Fatalf("snapshot named like a volume: %v", err)
	}

	// Unsafe IDs are refused before anything touches the disk.
	for _, id := range []string{"", "../x", "a/b", ".hidden"} {
		if err := s.PutVolume(Volume{ID: id, Name: "n" + id}); err == nil {
			t.Errorf("PutVolume(%q) succeeded", id)
		}
	}

	// Renaming a record frees the old name.
	renamed := v
	renamed.Name = "pvc-renamed"
	if err := s.PutVolume(renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VolumeByName("pvc-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old name still resolves: %v", err)
	}

	// A second store on the same directory sees everything (a restart).
	s2, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.GetVolume("v-1"); err != nil || got.Name != "pvc-renamed" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if got, err := s2.GetSnapshot("s-1"); err != nil || got.SourceVolumeID != "v-1" {
		t.Fatalf("snapshot after reopen: %+v, %v", got, err)
	}

	if err := s2.DeleteVolume("v-1"); err != nil {
		t.Fatal(err)
	}
	if err := s2.fold(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes", "v-1.json")); !os.IsNotExist(err) {
		t.Fatalf("record file survives delete and fold: %v", err)
	}
	if _, err := s2.VolumeByName("pvc-renamed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted volume's name still resolves: %v", err)
	}
}

func TestFileStoreListSorted(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"v-c", "v-a", "v-b"} {
		if err := s.PutVolume(Volume{ID: id, Name: "n-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, v := range s.ListVolumes() {
		ids = append(ids, v.ID)
	}
	if want := []string{"v-a", "v-b", "v-c"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ListVolumes order: got %v, want %v", ids, want)
	}
	if err := s.DeleteVolume("v-b"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.ListVolumes()); n != 2 {
		t.Fatalf("after delete: %d volumes, want 2", n)
	}
}

// VisitVolumes sees every record as it is now: a replaced record's new
// size, no deleted record.
func TestFileStoreVisitVolumes(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"v-a", "v-b", "v-c"} {
		if err := s.PutVolume(Volume{ID: id, Name: "n-" + id, CapacityBytes: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutVolume(Volume{ID: "v-a", Name: "n-v-a", CapacityBytes: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVolume("v-b"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	s.VisitVolumes(func(v *Volume) { seen[v.ID] = v.CapacityBytes })
	if want := map[string]int64{"v-a": 10, "v-c": 3}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("visited %v, want %v", seen, want)
	}
}

// A crash between writing the temporary file and renaming it leaves the
// old record; opening the store removes the leftover.
func TestFileStoreInterruptedWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutVolume(Volume{ID: "v-1", Name: "a", CapacityBytes: 1}); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, "volumes", ".v-1.json.123.tmp")
	if err := os.WriteFile(leftover, []byte(`{"id":"v-1","name":"a","capac`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileStore(dir)
	if err != nil {
		t.Fatalf("open after interrupted write: %v", err)
	}
	if v, err := s2.GetVolume("v-1"); err != nil || v.CapacityBytes != 1 {
		t.Fatalf("old record not kept: %+v, %v", v, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover temporary file not removed: %v", err)
	}
}

// A record file that does not parse, or an intact journal frame whose
// entry does not, cannot come from a crash: damage stops the store from
// opening.
func TestFileStoreDamage(t *testing.T) {
	for name, c := range map[string]struct {
		file string
		data []byte
	}{
		"record file":           {"volumes/v-1.json", []byte("{")},
		"journal entry":         {"journal-0.log", appendFrame(nil, []byte(`{"table":`))},
		"journal of no table":   {"journal-0.log", appendFrame(nil, []byte(`{"table":"nope","id":"x"}`))},
		"journal entry with ID": {"journal-0.log", appendFrame(nil, []byte(`{"table":"volumes","id":"v-1","record":{"id":"v-2"}}`))},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mustOpen(t, dir)
			if err := os.WriteFile(filepath.Join(dir, c.file), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenFileStore(dir); err == nil {
				t.Fatalf("damage in %s: the store opened", c.file)
			}
		})
	}
}

func TestFileStoreConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Half of them race for the same name: exactly one may win.
			name := "shared"
			if i%2 == 1 {
				name = "own-" + string(rune('a'+i))
			}
			errs <- s.PutVolume(Volume{ID: "v-" + string(rune('a'+i)), Name: name})
		}(i)
	}
	wg.Wait()
	close(errs)
	var ok, exists int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrAlreadyExists):
			exists++
		default:
			t.Fatal(err)
		}
	}
	if ok != 11 || exists != 9 {
		t.Fatalf("got %d stored and %d already-exists, want 11 and 9", ok, exists)
	}
	// The records on disk are the winners': none of a loser was written.
	again, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(again.ListVolumes()); n != 11 {
		t.Fatalf("%d records on disk, want 11", n)
	}
	if _, err := again.VolumeByName("shared"); err != nil {
		t.Fatal(err)
	}
}

func TestFileStoreDiskUsage(t *testing.T) {
	s, err := OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := s.PutVolume(Volume{ID: "v-" + string(rune('a'+i)), Name: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("disk usage did not grow with records: %d -> %d", before, after)
	}
}

// Clone must copy everything a caller could change through a reference.
func TestVolumeCloneIsDeep(t *testing.T) {
	v := Volume{
		Parameters:        map[string]string{"a": "1"},
		MutableParameters: map[string]string{"b": "2"},
		Published:         map[string]Publication{"n": {ReadOnly: true}},
		Staged:            &Staging{Path: "/s", MountFlags: []string{"noexec"}},
		Targets:           map[string]Target{"/t": {MountFlags: []string{"nosuid"}}},
	}
	c := v.Clone()
	c.Parameters["a"] = "x"
	c.MutableParameters["b"] = "x"
	c.Published["n"] = Publication{}
	c.Staged.Path = "/x"
	c.Staged.MountFlags[0] = "x"
	c.Targets["/t"].MountFlags[0] = "x"
	c.Targets["/u"] = Target{}
	if v.Parameters["a"] != "1" || v.MutableParameters["b"] != "2" || !v.Published["n"].ReadOnly ||
		v.Staged.Path != "/s" || v.Staged.MountFlags[0] != "noexec" ||
		v.Targets["/t"].MountFlags[0] != "nosuid" || len(v.Targets) != 1 {
		t.Fatalf("changing the clone changed the original: %+v", v)
	}
	g := Group{SnapshotIDs: []string{"s"}, SourceVolumeIDs: []string{"v"}}
	gc := g.Clone()
	gc.SnapshotIDs[0], gc.SourceVolumeIDs[0] = "x", "x"
	if g.SnapshotIDs[0] != "s" || g.SourceVolumeIDs[0] != "v" {
		t.Fatalf("changing the group clone changed the original: %+v", g)
	}
}
