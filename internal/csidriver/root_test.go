package csidriver_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver"
	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

var pools = []string{"btrfs", "ext4"}

// A 10 MiB directory volume takes 10 MiB and refuses the 11th, on both
// pools; after expansion the room is there.
func TestDirVolumeCapacityIsEnforced(t *testing.T) {
	for _, fstype := range pools {
		t.Run(fstype, func(t *testing.T) {
			r := newRig(t, fstype)
			ctx := context.Background()
			id := r.create(t, "ten", 10<<20, nil, false, nil)
			_, target := r.attach(t, id, false)
			written, err := hostopstest.Fill(filepath.Join(target, "data"), 11<<20)
			if !errors.Is(err, unix.EDQUOT) && !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("wrote %d bytes into a 10 MiB volume: %v, want EDQUOT or ENOSPC", written, err)
			}
			if written > 10<<20 || written < 9<<20 {
				t.Fatalf("the volume stopped the writer at %d bytes, want just under 10 MiB", written)
			}
			stats, err := r.d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target})
			if err != nil {
				t.Fatal(err)
			}
			bytes := stats.GetUsage()[0]
			if bytes.GetTotal() != 10<<20 || bytes.GetUsed() < 9<<20 {
				t.Fatalf("stats %v: want total 10 MiB, used over 9 MiB", bytes)
			}
			if _, err := r.d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
				CapacityRange: &csi.CapacityRange{RequiredBytes: 20 << 20}}); err != nil {
				t.Fatal(err)
			}
			if n, err := hostopstest.Fill(filepath.Join(target, "more"), 5<<20); err != nil {
				t.Fatalf("after expansion to 20 MiB only %d more bytes fit: %v", n, err)
			}
			r.detach(t, id, true)
		})
	}
}

// A raw block volume is a block device at the target, of the volume's
// size, that keeps what is written to it.
func TestBlockVolumeIsABlockDevice(t *testing.T) {
	r := newRig(t, "ext4")
	id := r.create(t, "raw", 16<<20, nil, true, nil)
	_, target := r.attach(t, id, true)
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		t.Fatalf("target mode %v, want a block device", fi.Mode())
	}
	size, err := hostops.New().DeviceSize(target)
	if err != nil || size != 16<<20 {
		t.Fatalf("device size %d, %v; want 16 MiB", size, err)
	}
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pattern := []byte("volplane block volume")
	if _, err := f.WriteAt(pattern, size-4096); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	got := make([]byte, len(pattern))
	if _, err := f.ReadAt(got, size-4096); err != nil || string(got) != string(pattern) {
		t.Fatalf("read back %q, %v", got, err)
	}
	f.Close()
	r.detach(t, id, true)
	if loops := hostopstest.LoopDevicesUnder(filepath.Join(r.d.Pool().DataDir(), "blocks")); len(loops) != 0 {
		t.Fatalf("loop devices left after unstage: %v", loops)
	}
}

// Expansion shows inside the mounted filesystem: XFS grows online; ext4
// grows when staged again (online ext4 growth needs CAP_SYS_RESOURCE).
func TestExpansionIsVisibleInTheFilesystem(t *testing.T) {
	r := newRig(t, "btrfs")
	ctx := context.Background()
	expand := func(id string, size int64) {
		t.Helper()
		resp, err := r.d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id,
			CapacityRange: &csi.CapacityRange{RequiredBytes: size}})
		if err != nil || !resp.GetNodeExpansionRequired() {
			t.Fatalf("controller expand: %v, %v", resp, err)
		}
	}
	t.Run("xfs online", func(t *testing.T) {
		id := r.create(t, "xfs", 300<<20, map[string]string{csidriver.ParamFSType: "xfs"}, false, nil)
		_, target := r.attach(t, id, false)
		before := hostopstest.StatfsTotal(t, target)
		expand(id, 400<<20)
		resp, err := r.d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target})
		if err != nil || resp.GetCapacityBytes() != 400<<20 {
			t.Fatalf("node expand: %v, %v", resp, err)
		}
		if after := hostopstest.StatfsTotal(t, target); after < before+90<<20 {
			t.Fatalf("filesystem size %d -> %d, want about 100 MiB more", before, after)
		}
		r.detach(t, id, true)
	})
	t.Run("ext4 offline", func(t *testing.T) {
		id := r.create(t, "ext4", 16<<20, map[string]string{csidriver.ParamFSType: "ext4"}, false, nil)
		_, target := r.attach(t, id, false)
		before := hostopstest.StatfsTotal(t, target)
		if err := os.WriteFile(filepath.Join(target, "keep"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		r.detach(t, id, false)
		expand(id, 48<<20)
		_, target = r.attach(t, id, false)
		if after := hostopstest.StatfsTotal(t, target); after < before+28<<20 {
			t.Fatalf("filesystem size %d -> %d, want about 32 MiB more", before, after)
		}
		if b, err := os.ReadFile(filepath.Join(target, "keep")); err != nil || string(b) != "kept" {
			t.Fatalf("data after growth: %q, %v", b, err)
		}
		r.detach(t, id, true)
	})
}

// Snapshots are independent copies: a volume restored from one holds
// exactly what the source held when it was taken, after the source was
// changed and deleted.
func TestSnapshotRestoresIdenticalContent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
	}{
		{"directory", nil},
		{"ext4 block", map[string]string{csidriver.ParamType: "block"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "btrfs")
			ctx := context.Background()
			src := r.create(t, "src", 32<<20, tc.params, false, nil)
			_, target := r.attach(t, src, false)
			writeTree(t, target)
			want := treeDigest(t, target)
			snap, err := r.d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: src})
			if err != nil {
				t.Fatal(err)
			}
			// Change the source after the snapshot, then delete it.
			os.RemoveAll(filepath.Join(target, "d", "b"))
			os.WriteFile(filepath.Join(target, "d", "c", "f"), []byte("changed"), 0o640)
			clone := r.create(t, "clone", 32<<20, tc.params, false, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
				Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src}}})
			changed := treeDigest(t, target)
			r.detach(t, src, true)

			restored := r.create(t, "restored", 32<<20, tc.params, false, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
				Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}})
			_, rt := r.attach(t, restored, false)
			if got := treeDigest(t, rt); !sameDigest(got, want) {
				t.Fatalf("restored content differs from the snapshot's source:\n got %v\nwant %v", got, want)
			}
			_, ct := r.attach(t, clone, false)
			if got := treeDigest(t, ct); !sameDigest(got, changed) {
				t.Fatalf("clone differs from its source:\n got %v\nwant %v", got, changed)
			}
			r.detach(t, restored, true)
			r.detach(t, clone, true)
			if _, err := r.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A group snapshot of two volumes holds both at one point in time. A
// writer bumps a counter in volume A, then in volume B, over and over; the
// snapshots must show A's counter equal to B's or one ahead, as at any
// single instant. Copies taken one after the other while the writer runs
// would drift apart by many steps.
func TestGroupSnapshotIsOnePointInTime(t *testing.T) {
	r := newRig(t, "btrfs")
	ctx := context.Background()
	block := map[string]string{csidriver.ParamType: "block"}
	a := r.create(t, "a", 32<<20, block, false, nil)
	b := r.create(t, "b", 32<<20, block, false, nil)
	_, ta := r.attach(t, a, false)
	_, tb := r.attach(t, b, false)

	fa, err := os.Create(filepath.Join(ta, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Create(filepath.Join(tb, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	var count atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	writeErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 8)
		for n := uint64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.LittleEndian.PutUint64(buf, n)
			if _, err := fa.WriteAt(buf, 0); err != nil {
				writeErr <- err
				return
			}
			if _, err := fb.WriteAt(buf, 0); err != nil {
				writeErr <- err
				return
			}
			count.Store(n)
		}
	}()
	waitFor := func(n uint64) {
		for count.Load() < n {
			select {
			case err := <-writeErr:
				t.Fatalf("writer: %v", err)
			default:
			}
		}
	}
	waitFor(10000)
	before := count.Load()
	resp, err := r.d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{a, b}})
	if err != nil {
		close(stop)
		t.Fatal(err)
	}
	waitFor(count.Load() + 10000)
	close(stop)
	wg.Wait()
	after := count.Load()

	counters := map[string]uint64{}
	for _, s := range resp.GetGroupSnapshot().GetSnapshots() {
		id := r.create(t, "from-"+s.GetSnapshotId(), 32<<20, block, false, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: s.GetSnapshotId()}}})
		_, target := r.attach(t, id, false)
		buf, err := os.ReadFile(filepath.Join(target, "counter"))
		if err != nil || len(buf) != 8 {
			t.Fatalf("counter in the snapshot of %s: %v", s.GetSourceVolumeId(), err)
		}
		counters[s.GetSourceVolumeId()] = binary.LittleEndian.Uint64(buf)
		r.detach(t, id, true)
	}
	ca, cb := counters[a], counters[b]
	t.Logf("writer at %d before the group snapshot, %d after; snapshots hold A=%d B=%d", before, after, ca, cb)
	if ca != cb && ca != cb+1 {
		t.Fatalf("snapshots hold A=%d and B=%d: not one point in time", ca, cb)
	}
	if ca < before || ca >= after {
		t.Fatalf("snapshot counter %d outside [%d, %d): writes before the call must be in it, writes after it not", ca, before, after)
	}
	if _, err := r.d.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{
		GroupSnapshotId: resp.GetGroupSnapshot().GetGroupSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	fa.Close()
	fb.Close()
	r.detach(t, a, true)
	r.detach(t, b, true)
}

// Directory volumes in a group: both snapshots hold what was written
// before the call and carry the group's ID and creation time.
func TestGroupSnapshotOfDirectoryVolumes(t *testing.T) {
	r := newRig(t, "ext4")
	ctx := context.Background()
	var ids []string
	digests := map[string]map[string]string{}
	for _, name := range []string{"a", "b"} {
		id := r.create(t, name, 16<<20, nil, false, nil)
		_, target := r.attach(t, id, false)
		writeTree(t, target)
		digests[id] = treeDigest(t, target)
		ids = append(ids, id)
	}
	resp, err := r.d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGroupSnapshot()
	for _, s := range g.GetSnapshots() {
		if s.GetGroupSnapshotId() != g.GetGroupSnapshotId() || !s.GetCreationTime().AsTime().Equal(g.GetCreationTime().AsTime()) {
			t.Fatalf("member %v does not carry the group's ID and time", s)
		}
		id := r.create(t, "from-"+s.GetSnapshotId(), 16<<20, nil, false, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: s.GetSnapshotId()}}})
		_, target := r.attach(t, id, false)
		if got := treeDigest(t, target); !sameDigest(got, digests[s.GetSourceVolumeId()]) {
			t.Fatalf("snapshot of %s differs from the volume", s.GetSourceVolumeId())
		}
		r.detach(t, id, true)
	}
	if _, err := r.d.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GetGroupSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		r.detach(t, id, true)
	}
}

// A restart keeps everything; after a "reboot" (mounts and loop devices
// gone) the driver attaches the staged block volume again and mounts its
// staging path, with the data intact.
func TestRestartReattachesBlockVolumes(t *testing.T) {
	r := newRig(t, "btrfs")
	ctx := context.Background()
	id := r.create(t, "blk", 16<<20, map[string]string{csidriver.ParamType: "block"}, false, nil)
	staging, target := r.attach(t, id, false)
	if err := os.WriteFile(filepath.Join(target, "data"), []byte("survives"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	before, _ := r.d.Store().GetVolume(id)

	r.start(t) // restart, nothing lost
	after, _ := r.d.Store().GetVolume(id)
	if after.Staged == nil || after.Staged.Device != before.Staged.Device || len(after.Targets) != 1 {
		t.Fatalf("restart changed the node state: %+v -> %+v", before.Staged, after.Staged)
	}

	host := hostops.New()
	for _, m := range []string{target, staging} {
		if err := host.Unmount(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := host.LoopDetach(ctx, before.Staged.Device); err != nil {
		t.Fatal(err)
	}
	r.start(t) // after the "reboot"
	v, _ := r.d.Store().GetVolume(id)
	if v.Staged == nil || v.Staged.Device == "" || len(v.Targets) != 0 {
		t.Fatalf("after reboot: staged %+v, targets %v", v.Staged, v.Targets)
	}
	dev, err := host.LoopFind(r.d.Pool().BlockPath(id))
	if err != nil || dev != v.Staged.Device {
		t.Fatalf("loop device %q (%v), recorded %q", dev, err, v.Staged.Device)
	}
	if b, err := os.ReadFile(filepath.Join(staging, "data")); err != nil || string(b) != "survives" {
		t.Fatalf("data at the staging path after reboot: %q, %v", b, err)
	}
	if _, err := r.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: capability(false, snw)}); err != nil {
		t.Fatal(err)
	}
	r.detach(t, id, true)
}

// A volume larger than the pool, or than what is left of it, is refused
// with the right code and leaves nothing behind.
func TestOversizedVolumesLeaveNothing(t *testing.T) {
	r := newRig(t, "ext4") // a 2 GiB pool image
	ctx := context.Background()
	first := r.create(t, "first", 1<<30, nil, false, nil)
	for _, tc := range []struct {
		size int64
		code codes.Code
	}{{3 << 30, codes.OutOfRange}, {3 << 29, codes.ResourceExhausted}} {
		for _, block := range []bool{false, true} {
			_, err := r.d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "big",
				CapacityRange:      &csi.CapacityRange{RequiredBytes: tc.size},
				VolumeCapabilities: []*csi.VolumeCapability{capability(block, snw)}})
			if status.Code(err) != tc.code {
				t.Fatalf("%d bytes (block %v): %v, want %s", tc.size, block, err, tc.code)
			}
		}
	}
	if n := len(r.d.Store().ListVolumes()); n != 1 {
		t.Fatalf("%d volumes recorded, want 1", n)
	}
	for _, sub := range []string{"volumes", "blocks"} {
		entries, _ := os.ReadDir(filepath.Join(r.d.Pool().DataDir(), sub))
		if sub == "volumes" && len(entries) != 1 || sub == "blocks" && len(entries) != 0 {
			t.Fatalf("pool %s holds %d entries", sub, len(entries))
		}
	}
	if _, err := r.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: first}); err != nil {
		t.Fatal(err)
	}
}

// A volume restored from an XFS snapshot carries the source's filesystem
// UUID; it must still mount while the source is mounted.
func TestRestoredXFSMountsBesideItsSource(t *testing.T) {
	r := newRig(t, "btrfs")
	ctx := context.Background()
	params := map[string]string{csidriver.ParamFSType: "xfs"}
	src := r.create(t, "xfs-src", 300<<20, params, false, nil)
	_, target := r.attach(t, src, false)
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("xfs data"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := r.d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "xfs-snap", SourceVolumeId: src})
	if err != nil {
		t.Fatal(err)
	}
	restored := r.create(t, "xfs-restored", 300<<20, params, false, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}})
	_, rt := r.attach(t, restored, false)
	if b, err := os.ReadFile(filepath.Join(rt, "f")); err != nil || string(b) != "xfs data" {
		t.Fatalf("restored XFS volume: %q, %v", b, err)
	}
	r.detach(t, restored, true)
	r.detach(t, src, true)
	if _, err := r.d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
}

// A read-only ControllerPublishVolume reaches the node through the
// publish context: the volume is mounted read-only there.
func TestReadOnlyPublication(t *testing.T) {
	for _, block := range []bool{false, true} {
		name := map[bool]string{false: "directory", true: "ext4 block"}[block]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, "btrfs")
			ctx := context.Background()
			params := map[string]string{}
			if block {
				params[csidriver.ParamType] = "block"
			}
			id := r.create(t, "ro", 16<<20, params, false, nil)
			// Format it writable once, then publish it read-only.
			r.attach(t, id, false)
			r.detach(t, id, false)
			pub, err := r.d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: r.node,
				VolumeCapability: capability(false, snw), Readonly: true})
			if err != nil {
				t.Fatal(err)
			}
			staging, target := filepath.Join(r.dir, id, "staging"), filepath.Join(r.dir, id, "target")
			if _, err := r.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
				PublishContext: pub.GetPublishContext(), VolumeCapability: capability(false, snw)}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
				TargetPath: target, PublishContext: pub.GetPublishContext(), VolumeCapability: capability(false, snw)}); err != nil {
				t.Fatal(err)
			}
			err = os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Fatalf("write to a read-only publication: %v, want EROFS", err)
			}
			r.detach(t, id, false)
			if _, err := r.d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: r.node}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
