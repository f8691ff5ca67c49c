package csidriver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops/fakehost"
)

// A driver restarted after a crash finishes deletions, undoes creations
// nobody was told about, keeps what is in use and never deletes data that
// no record claims.
func TestRestartSettlesInterruptedOperations(t *testing.T) {
	dir := t.TempDir()
	h := fakehost.New()
	d := newFakeDriver(t, dir, h)
	ctx := context.Background()

	keep := mustCreate(t, d, createReq("keep", mib, nil)).GetVolumeId()
	staging := filepath.Join(dir, "staging")
	target := filepath.Join(dir, "target")
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: keep, StagingTargetPath: staging, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: keep, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}

	// Crash in the middle of a delete: the record says Deleting.
	del, _ := d.store.GetVolume(mustCreate(t, d, createReq("del", mib, nil)).GetVolumeId())
	del.Phase = state.Deleting
	if err := d.store.PutVolume(del); err != nil {
		t.Fatal(err)
	}
	// Crash in the middle of a create: record Creating, data half made.
	half := state.Volume{ID: "vol-00000000000000aa", Name: "half", Kind: state.KindDir, Phase: state.Creating,
		CapacityBytes: mib, CreatedAt: time.Now()}
	if err := d.store.PutVolume(half); err != nil {
		t.Fatal(err)
	}
	if err := d.pool.CreateDir(ctx, half.ID, mib, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.store.PutSnapshot(state.Snapshot{ID: "snap-00000000000000aa", Name: "half-snap",
		SourceVolumeID: keep, Kind: state.KindDir, Phase: state.Creating}); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(d.pool.DataDir(), "volumes", "vol-00000000000000bb")
	if err := os.Mkdir(orphan, 0o755); err != nil {
		t.Fatal(err)
	}

	d2 := newFakeDriver(t, dir, h) // the restart
	if _, err := d2.store.GetVolume(del.ID); err == nil {
		t.Error("interrupted delete not finished")
	}
	if _, err := os.Stat(d2.pool.DirPath(del.ID)); !os.IsNotExist(err) {
		t.Error("data of the deleted volume survives")
	}
	if _, err := d2.store.GetVolume(half.ID); err == nil {
		t.Error("interrupted create not undone")
	}
	if _, err := os.Stat(d2.pool.DirPath(half.ID)); !os.IsNotExist(err) {
		t.Error("data of the undone create survives")
	}
	if len(d2.store.ListSnapshots()) != 0 {
		t.Error("interrupted snapshot not undone")
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Errorf("data no record claims was touched: %v", err)
	}
	v, err := d2.store.GetVolume(keep)
	if err != nil || v.Staged == nil || len(v.Targets) != 1 {
		t.Fatalf("volume in use lost its node state: %+v, %v", v, err)
	}
}

// After a reboot the loop devices and mounts are gone: the driver attaches
// staged block volumes again and mounts their staging paths, and forgets
// publications for the CO to redo. The filesystem is found, not remade.
func TestRestartAfterRebootReattaches(t *testing.T) {
	dir := t.TempDir()
	h := fakehost.New()
	d := newFakeDriver(t, dir, h)
	ctx := context.Background()
	id := mustCreate(t, d, createReq("blk", 8*mib, map[string]string{ParamType: "block"})).GetVolumeId()
	staging := filepath.Join(dir, "staging")
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: filepath.Join(dir, "target"), VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}

	h.Reboot()
	d2 := newFakeDriver(t, dir, h)
	v, err := d2.store.GetVolume(id)
	if err != nil || v.Staged == nil {
		t.Fatalf("staging forgotten: %+v, %v", v, err)
	}
	dev, _ := h.LoopFind(d2.pool.BlockPath(id))
	if dev == "" || dev != v.Staged.Device {
		t.Fatalf("loop device %q, recorded %q", dev, v.Staged.Device)
	}
	if ok, _ := h.IsMountPoint(staging); !ok {
		t.Fatal("staging path not mounted again")
	}
	if len(v.Targets) != 0 {
		t.Fatalf("publication whose mount is gone kept: %v", v.Targets)
	}
	mkfs := 0
	for _, c := range h.Calls() {
		if len(c) >= 4 && c[:4] == "Mkfs" && filepath.Dir(c[5:]) != d2.pool.Dir() {
			mkfs++
		}
	}
	if mkfs != 1 {
		t.Fatalf("volume formatted %d times, want once: %v", mkfs, h.Calls())
	}
}
