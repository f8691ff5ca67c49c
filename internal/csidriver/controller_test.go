package csidriver

import (
	"context"
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

func TestCreateVolumeIdempotentByName(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	v1 := mustCreate(t, d, createReq("pvc-1", 10*mib, nil))
	v2 := mustCreate(t, d, createReq("pvc-1", 10*mib, nil))
	if v1.GetVolumeId() != v2.GetVolumeId() {
		t.Fatalf("same name gave two volumes: %s, %s", v1.GetVolumeId(), v2.GetVolumeId())
	}
	if v1.GetCapacityBytes() != 10*mib || h.Limit(d.pool.DirPath(v1.GetVolumeId())) != 10*mib {
		t.Fatalf("capacity %d, qgroup limit %d, want %d", v1.GetCapacityBytes(), h.Limit(d.pool.DirPath(v1.GetVolumeId())), 10*mib)
	}
	if seg := v1.GetAccessibleTopology()[0].GetSegments()[TopologyKey]; seg != testNode {
		t.Fatalf("topology %q, want %q", seg, testNode)
	}

	bigger := createReq("pvc-1", 20*mib, nil)
	bigger.CapacityRange.LimitBytes = 20 * mib
	_, err := d.CreateVolume(ctx, bigger)
	wantCode(t, err, codes.AlreadyExists)

	_, err = d.CreateVolume(ctx, createReq("pvc-1", 10*mib, map[string]string{ParamType: "block"}))
	wantCode(t, err, codes.AlreadyExists)

	if n := len(d.store.ListVolumes()); n != 1 {
		t.Fatalf("%d volumes recorded, want 1", n)
	}
}

// Every refused CreateVolume gets its code where the error is born and
// leaves neither a record nor data in the pool.
func TestCreateVolumeRefusals(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	d.space = func() (int64, int64, error) { return 100 * mib, 50 * mib, nil }
	otherNode := createReq("topo", mib, nil)
	otherNode.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{{Segments: map[string]string{TopologyKey: "node-2"}}}}
	fromMissingSnap := createReq("from-snap", mib, nil)
	fromMissingSnap.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "snap-0000000000000000"}}}
	fromMissingVol := createReq("from-vol", mib, nil)
	fromMissingVol.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "vol-0000000000000000"}}}
	badMutable := createReq("mutable", mib, nil)
	badMutable.MutableParameters = map[string]string{"XXX_FakeKey": "x"}

	for _, tc := range []struct {
		name string
		req  *csi.CreateVolumeRequest
		code codes.Code
	}{
		{"no name", createReq("", mib, nil), codes.InvalidArgument},
		{"no capabilities", &csi.CreateVolumeRequest{Name: "x"}, codes.InvalidArgument},
		{"multi node", createReq("x", mib, nil, mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)), codes.InvalidArgument},
		{"unknown parameter", createReq("x", mib, map[string]string{"speed": "fast"}), codes.InvalidArgument},
		{"bad mutable parameter", badMutable, codes.InvalidArgument},
		{"larger than the pool", createReq("x", 200*mib, nil), codes.OutOfRange},
		{"larger than the free space", createReq("x", 60*mib, nil), codes.ResourceExhausted},
		{"another node's topology", otherNode, codes.ResourceExhausted},
		{"missing source snapshot", fromMissingSnap, codes.NotFound},
		{"missing source volume", fromMissingVol, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.CreateVolume(ctx, tc.req)
			wantCode(t, err, tc.code)
			if n := len(d.store.ListVolumes()); n != 0 {
				t.Fatalf("%d records left behind", n)
			}
			for _, sub := range []string{"volumes", "blocks"} {
				if e := dirEntries(t, d.pool.DataDir()+"/"+sub); len(e) != 0 {
					t.Fatalf("pool %s holds %v", sub, e)
				}
			}
		})
	}
}

// Capacities are reserved in full: once promised, bytes count as taken
// even before anything is written.
func TestCapacityIsReserved(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	d.space = func() (int64, int64, error) { return 100 * mib, 100 * mib, nil }
	mustCreate(t, d, createReq("a", 60*mib, nil))
	_, err := d.CreateVolume(ctx, createReq("b", 60*mib, nil))
	wantCode(t, err, codes.ResourceExhausted)
	capResp, err := d.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if capResp.GetAvailableCapacity() != 40*mib {
		t.Fatalf("available %d, want %d", capResp.GetAvailableCapacity(), 40*mib)
	}
	other, err := d.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: "node-2"}}})
	if err != nil || other.GetAvailableCapacity() != 0 {
		t.Fatalf("another node's capacity: %v, %v; want 0", other, err)
	}
	vol, err := d.store.VolumeByName("a")
	if err != nil {
		t.Fatal(err)
	}
	expand := func(size int64) (*csi.ControllerExpandVolumeResponse, error) {
		return d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: vol.ID,
			CapacityRange: &csi.CapacityRange{RequiredBytes: size}})
	}
	_, err = expand(120 * mib)
	wantCode(t, err, codes.OutOfRange)
	mustCreate(t, d, createReq("b", 30*mib, nil)) // 10 MiB left
	_, err = expand(80 * mib)
	wantCode(t, err, codes.ResourceExhausted)
	resp, err := expand(70 * mib)
	if err != nil || resp.GetCapacityBytes() != 70*mib || resp.GetNodeExpansionRequired() {
		t.Fatalf("expand a directory volume: %v, %v", resp, err)
	}
	if got := h.Limit(d.pool.DirPath(vol.ID)); got != 70*mib {
		t.Fatalf("qgroup limit after expansion: %d", got)
	}
	if resp, err := expand(10 * mib); err != nil || resp.GetCapacityBytes() != 70*mib {
		t.Fatalf("shrinking must be a no-op: %v, %v", resp, err)
	}
}

func TestControllerPublish(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, mustCreate(t, d, createReq(fmt.Sprintf("v%d", i), mib, nil)).GetVolumeId())
	}
	pub := func(id, node string, ro bool) (*csi.ControllerPublishVolumeResponse, error) {
		return d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node,
			VolumeCapability: mountCap(snw), Readonly: ro})
	}
	if _, err := pub(ids[0], "node-2", false); err == nil {
		t.Fatal("publishing to an unknown node succeeded")
	} else {
		wantCode(t, err, codes.NotFound)
	}
	resp, err := pub(ids[0], testNode, true)
	if err != nil || resp.GetPublishContext()[publishReadOnly] != "true" {
		t.Fatalf("read-only publish: %v, %v", resp, err)
	}
	if _, err := pub(ids[0], testNode, true); err != nil {
		t.Fatalf("same publish again: %v", err)
	}
	_, err = pub(ids[0], testNode, false)
	wantCode(t, err, codes.AlreadyExists)
	for _, id := range ids[1:3] {
		if _, err := pub(id, testNode, false); err != nil {
			t.Fatal(err)
		}
	}
	// MaxVolumesPerNode is 3.
	_, err = pub(ids[3], testNode, false)
	wantCode(t, err, codes.ResourceExhausted)

	list, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for _, e := range list.GetEntries() {
		published += len(e.GetStatus().GetPublishedNodeIds())
	}
	if published != 3 {
		t.Fatalf("ListVolumes reports %d publications, want 3", published)
	}
	_, err = d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: ids[0]})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: ids[0], NodeId: testNode}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "vol-0000000000000000", NodeId: testNode}); err != nil {
		t.Fatalf("unpublishing an unknown volume must succeed: %v", err)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: ids[0]}); err != nil {
		t.Fatalf("deleting twice must succeed: %v", err)
	}
}

func TestListVolumesPaging(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		mustCreate(t, d, createReq(fmt.Sprintf("v%d", i), mib, nil))
	}
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		resp, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: 2, StartingToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetEntries()) > 2 {
			t.Fatalf("page of %d entries, max 2", len(resp.GetEntries()))
		}
		for _, e := range resp.GetEntries() {
			if seen[e.GetVolume().GetVolumeId()] {
				t.Fatalf("volume %s listed twice", e.GetVolume().GetVolumeId())
			}
			seen[e.GetVolume().GetVolumeId()] = true
		}
		if pages == 0 {
			// Deleting an entry of a later page must not shift the rest.
			last := d.store.ListVolumes()[4].ID
			if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: last}); err != nil {
				t.Fatal(err)
			}
		}
		token = resp.GetNextToken()
		if token == "" {
			break
		}
	}
	if len(seen) != 4 {
		t.Fatalf("listed %d volumes, want the 4 that remain", len(seen))
	}
	_, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: "invalid-token"})
	wantCode(t, err, codes.Aborted)
}

func TestModifyVolume(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	req := createReq("m", mib, nil)
	req.MutableParameters = map[string]string{MutableCompression: "lzo"}
	v := mustCreate(t, d, req)
	path := d.pool.DirPath(v.GetVolumeId())
	if got := h.Property(path, "compression"); got != "lzo" {
		t.Fatalf("compression at create: %q", got)
	}
	if _, err := d.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: v.GetVolumeId(),
		MutableParameters: map[string]string{MutableCompression: "none"}}); err != nil {
		t.Fatal(err)
	}
	if got := h.Property(path, "compression"); got != "" {
		t.Fatalf("compression none must clear the property, got %q", got)
	}
	rec, _ := d.store.GetVolume(v.GetVolumeId())
	if rec.MutableParameters[MutableCompression] != "none" {
		t.Fatalf("modification not recorded: %v", rec.MutableParameters)
	}
	_, err := d.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: "vol-0000000000000000",
		MutableParameters: map[string]string{MutableCompression: "zstd"}})
	wantCode(t, err, codes.NotFound)
}

func TestValidateVolumeCapabilities(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	dir := mustCreate(t, d, createReq("dir", mib, nil))
	resp, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: dir.GetVolumeId(),
		VolumeCapabilities: []*csi.VolumeCapability{blockCap(snw)}})
	if err != nil || resp.GetConfirmed() != nil || resp.GetMessage() == "" {
		t.Fatalf("a directory volume as raw block must not be confirmed: %v, %v", resp, err)
	}
	resp, err = d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: dir.GetVolumeId(),
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}})
	if err != nil || resp.GetConfirmed() == nil {
		t.Fatalf("read-only mount must be confirmed: %v, %v", resp, err)
	}
	_, err = d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-0000000000000000",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap(snw)}})
	wantCode(t, err, codes.NotFound)
}

func TestSnapshotsAndRestore(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	src := mustCreate(t, d, createReq("src", 10*mib, nil))
	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: src.GetVolumeId()})
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: src.GetVolumeId()})
	if err != nil || again.GetSnapshot().GetSnapshotId() != snap.GetSnapshot().GetSnapshotId() {
		t.Fatalf("snapshot by the same name: %v, %v", again, err)
	}
	other := mustCreate(t, d, createReq("other", mib, nil))
	_, err = d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: other.GetVolumeId()})
	wantCode(t, err, codes.AlreadyExists)

	small := createReq("small", 5*mib, nil)
	small.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}}
	_, err = d.CreateVolume(ctx, small)
	wantCode(t, err, codes.OutOfRange)
	block := createReq("wrong-kind", 10*mib, map[string]string{ParamType: "block"})
	block.VolumeContentSource = small.VolumeContentSource
	_, err = d.CreateVolume(ctx, block)
	wantCode(t, err, codes.InvalidArgument)

	// The snapshot outlives its source.
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: src.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	restore := createReq("restored", 10*mib, nil)
	restore.VolumeContentSource = small.VolumeContentSource
	restored := mustCreate(t, d, restore)
	if restored.GetContentSource().GetSnapshot().GetSnapshotId() != snap.GetSnapshot().GetSnapshotId() {
		t.Fatalf("content source not reported: %v", restored.GetContentSource())
	}

	list, err := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SourceVolumeId: src.GetVolumeId()})
	if err != nil || len(list.GetEntries()) != 1 {
		t.Fatalf("snapshots of the deleted source: %v, %v", list, err)
	}
	if _, err := d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	_, err = d.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()})
	wantCode(t, err, codes.NotFound)
}

func TestGroupSnapshots(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	a := mustCreate(t, d, createReq("a", mib, nil)).GetVolumeId()
	b := mustCreate(t, d, createReq("b", mib, nil)).GetVolumeId()
	resp, err := d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGroupSnapshot()
	if len(g.GetSnapshots()) != 2 || !g.GetReadyToUse() {
		t.Fatalf("group: %v", g)
	}
	for _, s := range g.GetSnapshots() {
		if s.GetGroupSnapshotId() != g.GetGroupSnapshotId() || !s.GetCreationTime().AsTime().Equal(g.GetCreationTime().AsTime()) {
			t.Fatalf("member %s: group %q, time %v; want %q, %v", s.GetSnapshotId(), s.GetGroupSnapshotId(),
				s.GetCreationTime().AsTime(), g.GetGroupSnapshotId(), g.GetCreationTime().AsTime())
		}
	}
	again, err := d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{b, a}})
	if err != nil || again.GetGroupSnapshot().GetGroupSnapshotId() != g.GetGroupSnapshotId() {
		t.Fatalf("same group again: %v, %v", again, err)
	}
	_, err = d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{a}})
	wantCode(t, err, codes.AlreadyExists)
	_, err = d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "h", SourceVolumeIds: []string{a, a}})
	wantCode(t, err, codes.InvalidArgument)

	member := g.GetSnapshots()[0].GetSnapshotId()
	_, err = d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: member})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = d.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: g.GetGroupSnapshotId(), SnapshotIds: []string{member}})
	wantCode(t, err, codes.InvalidArgument)
	if _, err := d.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GetGroupSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	if n := len(d.store.ListSnapshots()); n != 0 {
		t.Fatalf("%d member snapshots survive their group", n)
	}
	if e := dirEntries(t, d.pool.DataDir()+"/snapshots"); len(e) != 0 {
		t.Fatalf("pool still holds snapshots %v", e)
	}
}

func TestBlockSnapshotFreezesStagedFilesystem(t *testing.T) {
	d, h := fakeDriver(t)
	ctx := context.Background()
	v := mustCreate(t, d, createReq("blk", 10*mib, map[string]string{ParamType: "block"}))
	staging := t.TempDir()
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.GetVolumeId(),
		StagingTargetPath: staging, VolumeCapability: mountCap(snw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	var froze, cloned, thawed int
	for i, c := range h.Calls() {
		switch {
		case c == "Freeze "+staging:
			froze = i
		case len(c) > 9 && c[:9] == "CloneFile":
			cloned = i
		case c == "Thaw "+staging:
			thawed = i
		}
	}
	if !(froze > 0 && froze < cloned && cloned < thawed) {
		t.Fatalf("want freeze, clone, thaw in that order; calls: %v", h.Calls())
	}
	if h.Frozen(staging) {
		t.Fatal("filesystem left frozen")
	}
	rec, _ := d.store.GetVolume(v.GetVolumeId())
	if rec.Formatted != "ext4" {
		t.Fatalf("staging formatted %q, want ext4", rec.Formatted)
	}
	snaps := d.store.ListSnapshots()
	if len(snaps) != 1 || snaps[0].Formatted != "ext4" || snaps[0].Kind != state.KindBlock {
		t.Fatalf("snapshot record: %+v", snaps)
	}
}
