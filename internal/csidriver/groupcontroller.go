package csidriver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"volplane/internal/csidriver/state"
)

var _ csi.GroupControllerServer = (*Driver)(nil)

// GroupControllerGetCapabilities implements csi.GroupControllerServer.
func (d *Driver) GroupControllerGetCapabilities(ctx context.Context, _ *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT}},
	}}}, nil
}

// CreateVolumeGroupSnapshot implements csi.GroupControllerServer. All the
// volumes are held still together: the staged filesystems of block
// volumes are frozen first, then every copy is taken at once (btrfs
// snapshots of directory volumes started together land in one
// transaction), then everything is thawed. Every member snapshot carries
// the same creation time. Idempotent by name.
func (d *Driver) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	name, srcs := req.GetName(), req.GetSourceVolumeIds()
	if name == "" {
		return nil, errorf(codes.InvalidArgument, "name is required")
	}
	if len(srcs) == 0 {
		return nil, errorf(codes.InvalidArgument, "source volume IDs are required")
	}
	seen := map[string]bool{}
	for _, id := range srcs {
		if id == "" || seen[id] {
			return nil, errorf(codes.InvalidArgument, "source volume IDs must be distinct and non-empty")
		}
		seen[id] = true
	}
	if err := checkSnapshotParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	unlock := d.locks.Lock(groupNameKey(name))
	defer unlock()
	if g, err := d.store.GroupByName(name); err == nil {
		if !sameStrings(g.SourceVolumeIDs, srcs) {
			return nil, errorf(codes.AlreadyExists, "group snapshot %q exists for other volumes", name)
		}
		if g.Phase == state.Ready {
			return d.groupResponse(&g)
		}
		if err := d.deleteGroup(ctx, &g); err != nil {
			return nil, err
		}
	}

	keys := make([]string, len(srcs))
	for i, id := range srcs {
		keys[i] = volumeKey(id)
	}
	unlockVols := d.locks.Lock(keys...)
	defer unlockVols()
	vols := make([]*state.Volume, len(srcs))
	for i, id := range srcs {
		v, err := d.readyVolume(id)
		if err != nil {
			return nil, err
		}
		vols[i] = &v
	}

	g := state.Group{ID: newID(groupPrefix), Name: name, Phase: state.Creating,
		SourceVolumeIDs: append([]string(nil), srcs...), CreatedAt: time.Now().UTC()}
	snaps := make([]state.Snapshot, len(vols))
	for i, v := range vols {
		snaps[i] = d.newSnapshot(v, "", g.ID)
		g.SnapshotIDs = append(g.SnapshotIDs, snaps[i].ID)
	}
	// The group record first: a crash leaves a Creating group that the
	// next start rolls back together with its members.
	if err := d.store.PutGroup(g); err != nil {
		return nil, hostError(err, "record group snapshot %s", g.ID)
	}
	for i := range snaps {
		if err := d.store.PutSnapshot(snaps[i]); err != nil {
			d.rollbackGroup(ctx, &g)
			return nil, hostError(err, "record snapshot %s", snaps[i].ID)
		}
	}
	err := d.frozen(ctx, vols, func() error {
		at := time.Now().UTC()
		g.CreatedAt = at
		errs := make([]error, len(vols))
		var wg sync.WaitGroup
		for i := range vols {
			wg.Go(func() {
				snaps[i].CreatedAt = at
				errs[i] = d.takeSnapshot(ctx, vols[i], &snaps[i])
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err != nil {
		d.rollbackGroup(ctx, &g)
		return nil, hostError(err, "group snapshot %q", name)
	}
	for i := range snaps {
		snaps[i].Phase = state.Ready
		if err := d.store.PutSnapshot(snaps[i]); err != nil {
			d.rollbackGroup(ctx, &g)
			return nil, hostError(err, "record snapshot %s", snaps[i].ID)
		}
	}
	g.Phase = state.Ready
	if err := d.store.PutGroup(g); err != nil {
		d.rollbackGroup(ctx, &g)
		return nil, hostError(err, "record group snapshot %s", g.ID)
	}
	d.logger(ctx).Info("group snapshot created", "group", g.ID, "name", name, "volumes", len(vols))
	return d.groupResponse(&g)
}

func (d *Driver) groupResponse(g *state.Group) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	vg, err := d.csiGroup(g)
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: vg}, nil
}

func (d *Driver) csiGroup(g *state.Group) (*csi.VolumeGroupSnapshot, error) {
	out := &csi.VolumeGroupSnapshot{
		GroupSnapshotId: g.ID,
		CreationTime:    timestamppb.New(g.CreatedAt),
		ReadyToUse:      g.Phase == state.Ready,
	}
	for _, id := range g.SnapshotIDs {
		s, err := d.store.GetSnapshot(id)
		if err != nil {
			return nil, hostError(err, "read member %s of group snapshot %s", id, g.ID)
		}
		out.Snapshots = append(out.Snapshots, d.csiSnapshot(&s))
	}
	return out, nil
}

func (d *Driver) rollbackGroup(ctx context.Context, g *state.Group) {
	if err := d.deleteGroup(ctx, g); err != nil {
		d.logger(ctx).Error("rolling back a failed group snapshot", "group", g.ID, "err", err)
	}
}

// deleteGroup marks a group Deleting, deletes its members and its record.
func (d *Driver) deleteGroup(ctx context.Context, g *state.Group) error {
	if g.Phase != state.Deleting {
		g.Phase = state.Deleting
		if err := d.store.PutGroup(*g); err != nil {
			return hostError(err, "record deletion of group snapshot %s", g.ID)
		}
	}
	for _, id := range g.SnapshotIDs {
		s, err := d.store.GetSnapshot(id)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return hostError(err, "read snapshot %s", id)
		}
		if err := d.deleteSnapshot(ctx, &s); err != nil {
			return err
		}
	}
	if err := d.store.DeleteGroup(g.ID); err != nil {
		return hostError(err, "forget group snapshot %s", g.ID)
	}
	return nil
}

// checkGroupMembers compares the snapshot IDs a caller names with the
// group's: a mismatch is InvalidArgument, as the spec asks.
func checkGroupMembers(g *state.Group, ids []string) error {
	if len(ids) > 0 && !sameStrings(ids, g.SnapshotIDs) {
		return errorf(codes.InvalidArgument, "snapshot IDs do not match the members of group snapshot %s", g.ID)
	}
	return nil
}

// DeleteVolumeGroupSnapshot implements csi.GroupControllerServer. An
// unknown group is already deleted.
func (d *Driver) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "group snapshot ID is required")
	}
	unlock := d.locks.Lock(groupKey(id))
	defer unlock()
	g, err := d.store.GetGroup(id)
	if errors.Is(err, state.ErrNotFound) {
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	}
	if err != nil {
		return nil, hostError(err, "read group snapshot %s", id)
	}
	if err := checkGroupMembers(&g, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	keys := make([]string, len(g.SnapshotIDs))
	for i, sid := range g.SnapshotIDs {
		keys[i] = snapshotKey(sid)
	}
	unlockSnaps := d.locks.Lock(keys...)
	defer unlockSnaps()
	if err := d.deleteGroup(ctx, &g); err != nil {
		return nil, err
	}
	d.logger(ctx).Info("group snapshot deleted", "group", id)
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

// GetVolumeGroupSnapshot implements csi.GroupControllerServer.
func (d *Driver) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "group snapshot ID is required")
	}
	g, err := d.store.GetGroup(id)
	if errors.Is(err, state.ErrNotFound) || (err == nil && g.Phase != state.Ready) {
		return nil, errorf(codes.NotFound, "group snapshot %q does not exist", id)
	}
	if err != nil {
		return nil, hostError(err, "read group snapshot %s", id)
	}
	if err := checkGroupMembers(&g, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	vg, err := d.csiGroup(&g)
	if err != nil {
		return nil, err
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: vg}, nil
}
