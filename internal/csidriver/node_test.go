package csidriver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/hostops/fakehost"
)

type nodeFixture struct {
	d       *Driver
	h       *fakehost.Host
	dir     string
	id      string
	staging string
}

func stagedDirVolume(t *testing.T) *nodeFixture {
	t.Helper()
	d, h := fakeDriver(t)
	f := &nodeFixture{d: d, h: h, dir: t.TempDir()}
	f.id = mustCreate(t, d, createReq("v", mib, nil)).GetVolumeId()
	f.staging = filepath.Join(f.dir, "staging")
	if _, err := d.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: f.id,
		StagingTargetPath: f.staging, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *nodeFixture) publish(target string, c *csi.VolumeCapability, ro bool) error {
	_, err := f.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: f.id,
		StagingTargetPath: f.staging, TargetPath: target, VolumeCapability: c, Readonly: ro})
	return err
}

func (f *nodeFixture) mounted(t *testing.T, path string) bool {
	t.Helper()
	ok, err := f.h.IsMountPoint(path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestNodeDirectoryLifecycle(t *testing.T) {
	f := stagedDirVolume(t)
	ctx := context.Background()
	if !f.mounted(t, f.staging) {
		t.Fatal("staging path not mounted")
	}
	target := filepath.Join(f.dir, "pod", "mount")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.publish(target, mountCap(snw), false); err != nil {
		t.Fatal(err)
	}
	if err := f.publish(target, mountCap(snw), false); err != nil {
		t.Fatalf("publishing again the same way must succeed: %v", err)
	}
	wantCode(t, f.publish(target, mountCap(snw), true), codes.AlreadyExists)
	// SINGLE_NODE_WRITER allows one target (the spec's table).
	wantCode(t, f.publish(filepath.Join(f.dir, "pod", "second"), mountCap(snw), false), codes.FailedPrecondition)

	_, err := f.d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: f.staging})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = f.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: f.id})
	wantCode(t, err, codes.FailedPrecondition)

	stats, err := f.d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: f.id, VolumePath: target})
	if err != nil || stats.GetUsage()[0].GetTotal() != mib {
		t.Fatalf("stats: %v, %v", stats, err)
	}
	_, err = f.d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: f.id, VolumePath: f.dir})
	wantCode(t, err, codes.NotFound)

	for i := 0; i < 2; i++ {
		if _, err := f.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: target}); err != nil {
			t.Fatalf("unpublish #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) || f.mounted(t, target) {
		t.Fatalf("target survives unpublish: %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: f.id, StagingTargetPath: f.staging}); err != nil {
			t.Fatalf("unstage #%d: %v", i+1, err)
		}
	}
	if f.mounted(t, f.staging) {
		t.Fatal("staging path still mounted")
	}
	if _, err := f.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: f.id}); err != nil {
		t.Fatal(err)
	}
}

func TestNodePublishMultiWriter(t *testing.T) {
	f := stagedDirVolume(t)
	multi := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
	// Staged as SINGLE_NODE_WRITER; the publish modes decide.
	for _, name := range []string{"a", "b"} {
		if err := f.publish(filepath.Join(f.dir, name), multi, false); err != nil {
			t.Fatalf("multi-writer target %s: %v", name, err)
		}
	}
	single := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	wantCode(t, f.publish(filepath.Join(f.dir, "c"), single, false), codes.FailedPrecondition)
}

// A target reached through a symlink, or inside another volume, would let
// one volume's mount land where the CO did not mean it: refused.
func TestNodePublishRefusesUnsafeTargets(t *testing.T) {
	f := stagedDirVolume(t)
	ctx := context.Background()
	real := filepath.Join(f.dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(f.dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.publish(filepath.Join(link, "target"), mountCap(snw), false), codes.InvalidArgument)
	wantCode(t, f.publish(link, mountCap(snw), false), codes.InvalidArgument)
	wantCode(t, f.publish("relative/target", mountCap(snw), false), codes.InvalidArgument)
	wantCode(t, f.publish(filepath.Join(f.d.pool.Dir(), "x"), mountCap(snw), false), codes.InvalidArgument)

	// A second volume may not be published inside the first one's
	// staging or target path.
	target := filepath.Join(f.dir, "pod-a")
	if err := f.publish(target, mountCap(snw), false); err != nil {
		t.Fatal(err)
	}
	other := mustCreate(t, f.d, createReq("other", mib, nil)).GetVolumeId()
	otherStaging := filepath.Join(f.dir, "staging-2")
	if _, err := f.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: other,
		StagingTargetPath: otherStaging, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{filepath.Join(target, "nested"), filepath.Join(f.staging, "nested")} {
		_, err := f.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: other,
			StagingTargetPath: otherStaging, TargetPath: bad, VolumeCapability: mountCap(snw)})
		wantCode(t, err, codes.InvalidArgument)
	}
	_, err := f.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: other,
		StagingTargetPath: filepath.Join(target, "staging"), VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.InvalidArgument)
	_, err = f.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: other,
		StagingTargetPath: filepath.Join(f.dir, "staging-3"), VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.FailedPrecondition) // already staged at staging-2
}

func TestNodeBlockLifecycle(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	dir := t.TempDir()
	id := mustCreate(t, d, createReq("b", 8*mib, nil, blockCap(snw))).GetVolumeId()
	staging := filepath.Join(dir, "staging")
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		VolumeCapability: blockCap(snw)}); err != nil {
		t.Fatal(err)
	}
	if loops := volumeLoops(d, h); len(loops) != 1 {
		t.Fatalf("loop devices for one staged block volume: %v", loops)
	}
	target := filepath.Join(dir, "dev")
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: blockCap(snw)}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(target); err != nil || fi.IsDir() {
		t.Fatalf("raw block target must be a file: %v", err)
	}
	// A filesystem publish of a volume staged raw is refused.
	_, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: filepath.Join(dir, "fs"), VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.FailedPrecondition)

	if _, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 16 * mib}}); err != nil {
		t.Fatal(err)
	}
	exp, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target})
	if err != nil || exp.GetCapacityBytes() != 16*mib {
		t.Fatalf("node expand: %v, %v", exp, err)
	}
	if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if loops := volumeLoops(d, h); len(loops) != 0 {
		t.Fatalf("loop devices left after unstage: %v", loops)
	}
}

func TestNodeVolumeLimit(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	dir := t.TempDir()
	for i := 0; i < 4; i++ {
		id := mustCreate(t, d, createReq(string(rune('a'+i)), mib, nil)).GetVolumeId()
		_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id,
			StagingTargetPath: filepath.Join(dir, id), VolumeCapability: mountCap(snw)})
		if i < 3 && err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			wantCode(t, err, codes.ResourceExhausted) // MaxVolumesPerNode is 3
		}
	}
	info, _ := d.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if info.GetMaxVolumesPerNode() != 3 || info.GetAccessibleTopology().GetSegments()[TopologyKey] != testNode {
		t.Fatalf("NodeGetInfo: %v", info)
	}
}

func TestNodeRefusals(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	unknown := "vol-0000000000000000"
	_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: unknown, StagingTargetPath: t.TempDir(), VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.NotFound)
	_, err = d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: unknown, StagingTargetPath: t.TempDir()})
	wantCode(t, err, codes.NotFound)
	_, err = d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: unknown, TargetPath: "/x", VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.FailedPrecondition) // no staging path
	id := mustCreate(t, d, createReq("dir", mib, nil)).GetVolumeId()
	_, err = d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: t.TempDir(), VolumeCapability: blockCap(snw)})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: "/not/staged",
		TargetPath: "/x", VolumeCapability: mountCap(snw)})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: "/nowhere"})
	wantCode(t, err, codes.NotFound)
}

// volumeLoops lists the fake loop devices of block volumes (not the
// pool's image).
func volumeLoops(d *Driver, h *fakehost.Host) []string {
	var out []string
	for dev, file := range h.LoopDevices() {
		if filepath.Dir(file) == filepath.Join(d.pool.DataDir(), "blocks") {
			out = append(out, dev)
		}
	}
	return out
}

// A volume that held a filesystem is never formatted again, even when
// the filesystem can no longer be found on it.
func TestStageNeverReformats(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	dir := t.TempDir()
	id := mustCreate(t, d, createReq("b", 8*mib, map[string]string{ParamType: "block"})).GetVolumeId()
	staging := filepath.Join(dir, "staging")
	stage := func() error {
		_, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap(snw)})
		return err
	}
	if err := stage(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	// The superblock is gone: a fresh fake host knows of no filesystem
	// on the volume's file.
	wipe := fakehost.New()
	d.host = wipe
	wantCode(t, stage(), codes.DataLoss)
	for _, c := range wipe.Calls() {
		if strings.HasPrefix(c, "Mkfs") {
			t.Fatalf("a formatted volume was formatted again: %v", wipe.Calls())
		}
	}
}

// TestNodeUnpublishRemovesOnlyWhatItCreated: a path the driver did not
// publish, or a target that existed before publication, survives
// NodeUnpublishVolume; the target the driver made does not.
func TestNodeUnpublishRemovesOnlyWhatItCreated(t *testing.T) {
	ctx := context.Background()
	f := stagedDirVolume(t)
	unpublish := func(target string) {
		t.Helper()
		if _, err := f.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: f.id, TargetPath: target}); err != nil {
			t.Fatalf("unpublish %s: %v", target, err)
		}
	}
	stranger := filepath.Join(f.dir, "someone-elses")
	if err := os.Mkdir(stranger, 0o755); err != nil {
		t.Fatal(err)
	}
	strangerFile := filepath.Join(f.dir, "someone-elses-file")
	if err := os.WriteFile(strangerFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unpublish(stranger)
	unpublish(strangerFile)
	for _, p := range []string{stranger, strangerFile} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s, never published, was removed: %v", p, err)
		}
	}

	precreated := filepath.Join(f.dir, "precreated")
	if err := os.Mkdir(precreated, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.publish(precreated, mountCap(snw), false); err != nil {
		t.Fatal(err)
	}
	unpublish(precreated)
	if _, err := os.Stat(precreated); err != nil || f.mounted(t, precreated) {
		t.Errorf("target the CO created: %v, mounted %v; want it kept, unmounted", err, f.mounted(t, precreated))
	}
}
