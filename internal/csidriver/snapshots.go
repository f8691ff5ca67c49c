package csidriver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

// checkSnapshotParameters accepts only the parameters the Kubernetes
// snapshotter adds; the driver has no snapshot parameters of its own.
func checkSnapshotParameters(params map[string]string) error {
	for k := range params {
		if !strings.HasPrefix(k, k8sParamPrefix) {
			return errorf(codes.InvalidArgument, "unknown snapshot parameter %q", k)
		}
	}
	return nil
}

// CreateSnapshot implements csi.ControllerServer. Snapshots are made at
// once and are independent copies: a read-only btrfs snapshot of a
// directory volume, a reflink of a block volume's file (taken with the
// volume's filesystem frozen when it is mounted). Idempotent by name.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	name, src := req.GetName(), req.GetSourceVolumeId()
	switch {
	case name == "":
		return nil, errorf(codes.InvalidArgument, "name is required")
	case src == "":
		return nil, errorf(codes.InvalidArgument, "source volume ID is required")
	}
	if err := checkSnapshotParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	if !topologyAccepts(req.GetAccessibilityRequirements(), d.cfg.NodeID) {
		return nil, errorf(codes.ResourceExhausted, "snapshots can only be kept on node %q", d.cfg.NodeID)
	}
	unlock := d.locks.Lock(snapshotNameKey(name))
	defer unlock()
	if s, err := d.store.SnapshotByName(name); err == nil {
		if s.SourceVolumeID != src {
			return nil, errorf(codes.AlreadyExists, "snapshot %q exists for volume %s", name, s.SourceVolumeID)
		}
		if s.Phase == state.Ready {
			return &csi.CreateSnapshotResponse{Snapshot: d.csiSnapshot(&s)}, nil
		}
		// A half-made snapshot that could not be rolled back: drop it
		// and take it again.
		if err := d.deleteSnapshot(ctx, &s); err != nil {
			return nil, err
		}
	}
	unlockVol := d.locks.Lock(volumeKey(src))
	defer unlockVol()
	v, err := d.readyVolume(src)
	if err != nil {
		return nil, err
	}
	s := d.newSnapshot(&v, name, "")
	if err := d.store.PutSnapshot(s); err != nil {
		return nil, hostError(err, "record snapshot %s", s.ID)
	}
	err = d.frozen(ctx, []*state.Volume{&v}, func() error {
		s.CreatedAt = time.Now().UTC()
		return d.takeSnapshot(ctx, &v, &s)
	})
	if err != nil {
		d.rollbackSnapshot(ctx, &s)
		return nil, hostError(err, "snapshot volume %s", src)
	}
	s.Phase = state.Ready
	if err := d.store.PutSnapshot(s); err != nil {
		d.rollbackSnapshot(ctx, &s)
		return nil, hostError(err, "record snapshot %s", s.ID)
	}
	d.logger(ctx).Info("snapshot created", "snapshot", s.ID, "name", name, "volume", src)
	return &csi.CreateSnapshotResponse{Snapshot: d.csiSnapshot(&s)}, nil
}

func (d *Driver) newSnapshot(v *state.Volume, name, group string) state.Snapshot {
	return state.Snapshot{
		ID:              newID(snapshotPrefix),
		Name:            name,
		SourceVolumeID:  v.ID,
		Kind:            v.Kind,
		Phase:           state.Creating,
		SizeBytes:       v.CapacityBytes,
		CreatedAt:       time.Now().UTC(),
		FSType:          v.FSType,
		Formatted:       v.Formatted,
		FilesystemBytes: v.FilesystemBytes,
		GroupID:         group,
	}
}

// takeSnapshot copies v into s's place in the pool.
func (d *Driver) takeSnapshot(ctx context.Context, v *state.Volume, s *state.Snapshot) error {
	if v.Kind == state.KindDir {
		return d.pool.SnapshotDir(ctx, v.ID, s.ID)
	}
	return d.pool.SnapshotBlock(ctx, v.ID, s.ID)
}

// frozen runs fn with the filesystems of the given block volumes that are
// staged on this node frozen, so their backing files hold a consistent
// image, and thaws them whatever happens. Directory volumes need no
// freeze: btrfs snapshots are atomic.
func (d *Driver) frozen(ctx context.Context, vols []*state.Volume, fn func() error) (err error) {
	var thaw []string
	defer func() {
		for i := len(thaw) - 1; i >= 0; i-- {
			if terr := d.host.Thaw(context.WithoutCancel(ctx), thaw[i]); terr != nil && err == nil {
				err = terr
			}
		}
	}()
	for _, v := range vols {
		if v.Kind != state.KindBlock || v.Staged == nil || v.Staged.Block {
			continue
		}
		if err := d.host.Freeze(ctx, v.Staged.Path); err != nil {
			return err
		}
		thaw = append(thaw, v.Staged.Path)
	}
	return fn()
}

// rollbackSnapshot removes a snapshot whose creation failed.
func (d *Driver) rollbackSnapshot(ctx context.Context, s *state.Snapshot) {
	if err := d.deleteSnapshot(ctx, s); err != nil {
		d.logger(ctx).Error("rolling back a failed snapshot", "snapshot", s.ID, "err", err)
	}
}

// deleteSnapshot marks a snapshot Deleting, removes its copy and record.
func (d *Driver) deleteSnapshot(ctx context.Context, s *state.Snapshot) error {
	if s.Phase != state.Deleting {
		s.Phase = state.Deleting
		if err := d.store.PutSnapshot(*s); err != nil {
			return hostError(err, "record deletion of snapshot %s", s.ID)
		}
	}
	var err error
	if s.Kind == state.KindDir {
		err = d.pool.DeleteDirSnapshot(ctx, s.ID)
	} else {
		err = d.pool.DeleteBlockSnapshot(ctx, s.ID)
	}
	if err != nil {
		return hostError(err, "delete snapshot %s", s.ID)
	}
	if err := d.store.DeleteSnapshot(s.ID); err != nil {
		return hostError(err, "forget snapshot %s", s.ID)
	}
	return nil
}

// DeleteSnapshot implements csi.ControllerServer. An unknown snapshot is
// already deleted; a member of a group snapshot goes with its group.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "snapshot ID is required")
	}
	unlock := d.locks.Lock(snapshotKey(id))
	defer unlock()
	s, err := d.store.GetSnapshot(id)
	if errors.Is(err, state.ErrNotFound) {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err != nil {
		return nil, hostError(err, "read snapshot %s", id)
	}
	if s.GroupID != "" {
		if _, err := d.store.GetGroup(s.GroupID); err == nil {
			return nil, errorf(codes.FailedPrecondition, "snapshot %s belongs to group snapshot %s; delete the group", id, s.GroupID)
		}
	}
	if err := d.deleteSnapshot(ctx, &s); err != nil {
		return nil, err
	}
	d.logger(ctx).Info("snapshot deleted", "snapshot", id)
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots implements csi.ControllerServer, paged like ListVolumes.
// Filtering by an unknown snapshot or volume returns nothing.
func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	var snaps []state.Snapshot
	var ids []string
	for _, s := range d.store.ListSnapshots() {
		if s.Phase != state.Ready ||
			(req.GetSnapshotId() != "" && s.ID != req.GetSnapshotId()) ||
			(req.GetSourceVolumeId() != "" && s.SourceVolumeID != req.GetSourceVolumeId()) {
			continue
		}
		snaps = append(snaps, s)
		ids = append(ids, s.ID)
	}
	start, end, next, err := page(ids, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for i := start; i < end; i++ {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: d.csiSnapshot(&snaps[i])})
	}
	return resp, nil
}

// GetSnapshot implements csi.ControllerServer.
func (d *Driver) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "snapshot ID is required")
	}
	s, err := d.store.GetSnapshot(id)
	if errors.Is(err, state.ErrNotFound) || (err == nil && s.Phase != state.Ready) {
		return nil, errorf(codes.NotFound, "snapshot %q does not exist", id)
	}
	if err != nil {
		return nil, hostError(err, "read snapshot %s", id)
	}
	return &csi.GetSnapshotResponse{Snapshot: d.csiSnapshot(&s)}, nil
}
