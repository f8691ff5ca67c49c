package csidriver

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/pool"
	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

var _ csi.ControllerServer = (*Driver)(nil)

// Lock keys. Name locks are always taken before ID locks.
func volumeNameKey(name string) string { return "volume-name/" + name }
func volumeKey(id string) string       { return "volume/" + id }
func snapshotNameKey(n string) string  { return "snapshot-name/" + n }
func snapshotKey(id string) string     { return "snapshot/" + id }
func groupNameKey(n string) string     { return "group-name/" + n }
func groupKey(id string) string        { return "group/" + id }

// CreateVolume implements csi.ControllerServer. It is idempotent by name:
// a second call with compatible arguments returns the same volume, one
// with incompatible arguments fails with AlreadyExists. A failure leaves
// nothing behind.
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if name == "" {
		return nil, errorf(codes.InvalidArgument, "name is required")
	}
	caps := req.GetVolumeCapabilities()
	if err := checkCapabilities(caps); err != nil {
		return nil, err
	}
	params, err := parseParameters(req.GetParameters(), caps)
	if err != nil {
		return nil, err
	}
	if err := checkMutableParameters(req.GetMutableParameters()); err != nil {
		return nil, err
	}
	if !topologyAccepts(req.GetAccessibilityRequirements(), d.cfg.NodeID) {
		return nil, errorf(codes.ResourceExhausted, "volumes can only be provisioned on node %q (%s)", d.cfg.NodeID, TopologyKey)
	}
	size, err := volumeSize(req.GetCapacityRange(), d.cfg.DefaultCapacity, minSize(params.kind, params.fsType))
	if err != nil {
		return nil, err
	}
	var srcSnap, srcVol string
	if src := req.GetVolumeContentSource(); src != nil {
		srcSnap, srcVol = src.GetSnapshot().GetSnapshotId(), src.GetVolume().GetVolumeId()
		if srcSnap == "" && srcVol == "" {
			return nil, errorf(codes.InvalidArgument, "volume content source names no snapshot or volume")
		}
	}

	keys := []string{volumeNameKey(name)}
	unlockName := d.locks.Lock(keys...)
	defer unlockName()

	if v, err := d.store.VolumeByName(name); err == nil {
		return d.existingVolume(ctx, &v, req, params, srcSnap, srcVol)
	}

	// Lock the source so it cannot be deleted while it is copied.
	var unlockSrc func()
	switch {
	case srcSnap != "":
		unlockSrc = d.locks.Lock(snapshotKey(srcSnap))
	case srcVol != "":
		unlockSrc = d.locks.Lock(volumeKey(srcVol))
	default:
		unlockSrc = func() {}
	}
	defer unlockSrc()

	v := state.Volume{
		ID:                newID(volumePrefix),
		Name:              name,
		Kind:              params.kind,
		Phase:             state.Creating,
		CapacityBytes:     size,
		CreatedAt:         time.Now().UTC(),
		FSType:            params.fsType,
		SourceSnapshotID:  srcSnap,
		SourceVolumeID:    srcVol,
		Parameters:        req.GetParameters(),
		MutableParameters: req.GetMutableParameters(),
	}
	if err := d.checkSource(&v); err != nil {
		return nil, err
	}
	if err := d.reserve(&v); err != nil {
		return nil, err
	}
	if err := d.build(ctx, &v); err != nil {
		d.rollbackVolume(ctx, &v)
		return nil, err
	}
	v.Phase = state.Ready
	if err := d.store.PutVolume(v); err != nil {
		d.rollbackVolume(ctx, &v)
		return nil, hostError(err, "record volume %s", v.ID)
	}
	d.logger(ctx).Info("volume created", "volume", v.ID, "name", name, "kind", v.Kind, "bytes", v.CapacityBytes)
	return &csi.CreateVolumeResponse{Volume: d.csiVolume(&v)}, nil
}

// existingVolume answers a CreateVolume for a name that already has a
// volume: the same volume when the request is compatible with it.
func (d *Driver) existingVolume(ctx context.Context, v *state.Volume, req *csi.CreateVolumeRequest, params volumeParams, srcSnap, srcVol string) (*csi.CreateVolumeResponse, error) {
	if v.Phase == state.Deleting {
		return nil, errorf(codes.Aborted, "volume %s named %q is being deleted", v.ID, v.Name)
	}
	switch {
	case v.Kind != params.kind:
		return nil, errorf(codes.AlreadyExists, "volume %q exists as a %s volume", v.Name, v.Kind)
	case !fitsRange(v.CapacityBytes, req.GetCapacityRange()):
		return nil, errorf(codes.AlreadyExists, "volume %q exists with %d bytes, outside the requested range", v.Name, v.CapacityBytes)
	case params.fsType != "" && v.FSType != "" && params.fsType != v.FSType:
		return nil, errorf(codes.AlreadyExists, "volume %q exists with filesystem %s", v.Name, v.FSType)
	case v.SourceSnapshotID != srcSnap || v.SourceVolumeID != srcVol:
		return nil, errorf(codes.AlreadyExists, "volume %q exists with another content source", v.Name)
	}
	for _, c := range req.GetVolumeCapabilities() {
		if err := capabilityFits(v, c); err != nil {
			return nil, errorf(codes.AlreadyExists, "volume %q exists but: %w", v.Name, err)
		}
	}
	if v.Phase == state.Creating {
		// A create that failed half way and could not be rolled back:
		// every step is idempotent, so finish it.
		if err := d.build(ctx, v); err != nil {
			return nil, err
		}
		v.Phase = state.Ready
		if err := d.store.PutVolume(*v); err != nil {
			return nil, hostError(err, "record volume %s", v.ID)
		}
	}
	return &csi.CreateVolumeResponse{Volume: d.csiVolume(v)}, nil
}

// checkSource validates a content source before anything is recorded.
func (d *Driver) checkSource(v *state.Volume) error {
	switch {
	case v.SourceSnapshotID != "":
		s, err := d.store.GetSnapshot(v.SourceSnapshotID)
		if err != nil || s.Phase != state.Ready {
			return errorf(codes.NotFound, "source snapshot %q does not exist", v.SourceSnapshotID)
		}
		if s.Kind != v.Kind {
			return errorf(codes.InvalidArgument, "snapshot %s is of a %s volume, not %s", s.ID, s.Kind, v.Kind)
		}
		if v.CapacityBytes < s.SizeBytes {
			return errorf(codes.OutOfRange, "volume of %d bytes cannot hold snapshot %s of %d bytes", v.CapacityBytes, s.ID, s.SizeBytes)
		}
		if v.FSType == "" {
			v.FSType = s.FSType
		}
	case v.SourceVolumeID != "":
		src, err := d.store.GetVolume(v.SourceVolumeID)
		if err != nil || src.Phase != state.Ready {
			return errorf(codes.NotFound, "source volume %q does not exist", v.SourceVolumeID)
		}
		if src.Kind != v.Kind {
			return errorf(codes.InvalidArgument, "volume %s is a %s volume, not %s", src.ID, src.Kind, v.Kind)
		}
		if v.CapacityBytes < src.CapacityBytes {
			return errorf(codes.OutOfRange, "volume of %d bytes cannot hold volume %s of %d bytes", v.CapacityBytes, src.ID, src.CapacityBytes)
		}
		if v.FSType == "" {
			v.FSType = src.FSType
		}
	}
	return nil
}

// reserve checks that the pool can hold v and records it as Creating.
// The check and the promise of v's bytes are one step under spaceMu
// against concurrent creates; the record's write is not (its fsyncs,
// ~25 ms each under load, made every create wait for all others'). Until
// the record is in the store, d.reserving holds v's bytes; for a moment
// after, both count them, which can refuse a create, never oversell.
func (d *Driver) reserve(v *state.Volume) error {
	d.spaceMu.Lock()
	if err := d.fitsPool(v.CapacityBytes, v.CapacityBytes); err != nil {
		d.spaceMu.Unlock()
		return err
	}
	if d.pool.Mode() == pool.ModeProjectQuota && v.Kind == state.KindDir {
		// The next project ID is read from the records: write this one
		// before another is chosen.
		defer d.spaceMu.Unlock()
		v.ProjectID = d.nextProjectID()
	} else {
		d.reserving.Add(v.CapacityBytes)
		d.spaceMu.Unlock()
		defer d.reserving.Add(-v.CapacityBytes)
	}
	if err := d.store.PutVolume(*v); err != nil {
		return hostError(err, "record volume %s", v.ID)
	}
	return nil
}

// fitsPool checks, with spaceMu held, that the pool can hold a volume of
// size bytes that takes delta bytes more than it does now (all of them for
// a new volume).
func (d *Driver) fitsPool(size, delta int64) error {
	total, avail, err := d.available()
	if err != nil {
		return hostError(err, "pool capacity")
	}
	if size > total {
		return errorf(codes.OutOfRange, "%d bytes exceed the pool's size of %d bytes", size, total)
	}
	if delta > avail {
		if delta == size {
			return errorf(codes.ResourceExhausted, "%d bytes requested, %d bytes available in the pool", size, avail)
		}
		return errorf(codes.ResourceExhausted, "%d more bytes requested, %d bytes available in the pool", delta, avail)
	}
	return nil
}

// build makes the backing object of a Creating volume. Every step is
// idempotent.
func (d *Driver) build(ctx context.Context, v *state.Volume) error {
	var err error
	switch {
	case v.SourceSnapshotID != "":
		s, gerr := d.store.GetSnapshot(v.SourceSnapshotID)
		if gerr != nil {
			return errorf(codes.NotFound, "source snapshot %q does not exist", v.SourceSnapshotID)
		}
		if v.Kind == state.KindDir {
			err = d.pool.RestoreDir(ctx, s.ID, v.ID, v.CapacityBytes, v.ProjectID)
		} else {
			err = d.pool.RestoreBlock(ctx, s.ID, v.ID, v.CapacityBytes)
			v.Formatted, v.FilesystemBytes = s.Formatted, s.FilesystemBytes
		}
	case v.SourceVolumeID != "":
		src, gerr := d.store.GetVolume(v.SourceVolumeID)
		if gerr != nil {
			return errorf(codes.NotFound, "source volume %q does not exist", v.SourceVolumeID)
		}
		if v.Kind == state.KindDir {
			err = d.pool.CloneDir(ctx, src.ID, v.ID, v.CapacityBytes, v.ProjectID)
		} else {
			err = d.frozen(ctx, []*state.Volume{&src}, func() error {
				return d.pool.CloneBlock(ctx, src.ID, v.ID, v.CapacityBytes)
			})
			v.Formatted, v.FilesystemBytes = src.Formatted, src.FilesystemBytes
		}
	case v.Kind == state.KindDir:
		err = d.pool.CreateDir(ctx, v.ID, v.CapacityBytes, v.ProjectID)
	default:
		err = d.pool.CreateBlock(ctx, v.ID, v.CapacityBytes)
	}
	if err != nil {
		return hostError(err, "create volume %s", v.ID)
	}
	if algo := v.MutableParameters[MutableCompression]; algo != "" {
		if err := d.pool.SetCompression(ctx, d.volumePath(v), algo); err != nil {
			return errorf(codes.InvalidArgument, "set compression on volume %s: %w", v.ID, err)
		}
	}
	return nil
}

// rollbackVolume removes what a failed create made. A rollback that fails
// leaves the record Creating, for the next start to finish.
func (d *Driver) rollbackVolume(ctx context.Context, v *state.Volume) {
	if err := d.deleteBacking(ctx, v); err != nil {
		d.logger(ctx).Error("rolling back a failed create", "volume", v.ID, "err", err)
		return
	}
	if err := d.store.DeleteVolume(v.ID); err != nil {
		d.logger(ctx).Error("rolling back a failed create", "volume", v.ID, "err", err)
	}
}

// deleteBacking removes a volume's data, detaching its loop device first.
func (d *Driver) deleteBacking(ctx context.Context, v *state.Volume) error {
	if v.Kind == state.KindDir {
		return d.pool.DeleteDir(ctx, v.ID)
	}
	if _, err := d.pool.BlockSize(v.ID); err == nil {
		if err := hostops.DetachFile(ctx, d.host, d.pool.BlockPath(v.ID)); err != nil {
			return err
		}
	}
	return d.pool.DeleteBlock(ctx, v.ID)
}

// DeleteVolume implements csi.ControllerServer. Deleting an unknown volume
// succeeds; a volume still published or staged is refused. Snapshots are
// independent copies and survive.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.store.GetVolume(id)
	if errors.Is(err, state.ErrNotFound) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err != nil {
		return nil, hostError(err, "read volume %s", id)
	}
	if err := d.checkUnused(&v); err != nil {
		return nil, err
	}
	if err := d.deleteVolume(ctx, &v); err != nil {
		return nil, err
	}
	d.logger(ctx).Info("volume deleted", "volume", id, "name", v.Name)
	return &csi.DeleteVolumeResponse{}, nil
}

// checkUnused refuses, naming the nodes, a volume still published to a
// node or staged or published on this one: the CO retries the deletion
// once it has unmounted and detached it, and a volume in use is never
// deleted under a running mount.
func (d *Driver) checkUnused(v *state.Volume) error {
	if len(v.Published) > 0 {
		return errorf(codes.FailedPrecondition, "volume %s is still published to node(s) %s",
			v.ID, strings.Join(slices.Sorted(maps.Keys(v.Published)), ", "))
	}
	if v.Staged != nil || len(v.Targets) > 0 {
		return errorf(codes.FailedPrecondition, "volume %s is still staged or published on node %s", v.ID, d.cfg.NodeID)
	}
	return nil
}

// deleteVolume marks a volume Deleting, removes its data and its record.
func (d *Driver) deleteVolume(ctx context.Context, v *state.Volume) error {
	if v.Phase != state.Deleting {
		v.Phase = state.Deleting
		if err := d.store.PutVolume(*v); err != nil {
			return hostError(err, "record deletion of volume %s", v.ID)
		}
	}
	if err := d.deleteBacking(ctx, v); err != nil {
		return hostError(err, "delete volume %s", v.ID)
	}
	if err := d.store.DeleteVolume(v.ID); err != nil {
		return hostError(err, "forget volume %s", v.ID)
	}
	return nil
}

// ControllerPublishVolume implements csi.ControllerServer. The volume is
// local, so "attaching" it records the node, enforces the node's volume
// limit and carries a read-only publication to the node.
func (d *Driver) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case node == "":
		return nil, errorf(codes.InvalidArgument, "node ID is required")
	}
	c := req.GetVolumeCapability()
	if err := checkCapability(c); err != nil {
		return nil, err
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	if node != d.cfg.NodeID {
		return nil, errorf(codes.NotFound, "node %q does not exist: volume %s is local to node %q", node, id, d.cfg.NodeID)
	}
	if err := capabilityFits(&v, c); err != nil {
		return nil, errorf(codes.InvalidArgument, "%w", err)
	}
	pub := state.Publication{
		ReadOnly:   req.GetReadonly() || readerOnly(c.GetAccessMode().GetMode()),
		AccessMode: int32(c.GetAccessMode().GetMode()),
		Block:      c.GetBlock() != nil,
	}
	publishContext := map[string]string{publishReadOnly: strconv.FormatBool(pub.ReadOnly)}
	if old, ok := v.Published[node]; ok {
		if old != pub {
			return nil, errorf(codes.AlreadyExists, "volume %s is published to node %q with other arguments", id, node)
		}
		return &csi.ControllerPublishVolumeResponse{PublishContext: publishContext}, nil
	}
	for other := range v.Published {
		return nil, errorf(codes.FailedPrecondition, "volume %s is published to node %q", id, other)
	}
	if n := d.countVolumes(func(o *state.Volume) bool { _, ok := o.Published[node]; return ok }); int64(n) >= d.cfg.MaxVolumesPerNode {
		return nil, errorf(codes.ResourceExhausted, "node %q has %d volumes published, the maximum", node, n)
	}
	if v.Published == nil {
		v.Published = map[string]state.Publication{}
	}
	v.Published[node] = pub
	if err := d.store.PutVolume(v); err != nil {
		return nil, hostError(err, "record publication of volume %s", id)
	}
	return &csi.ControllerPublishVolumeResponse{PublishContext: publishContext}, nil
}

// ControllerUnpublishVolume implements csi.ControllerServer. An unknown
// volume or node counts as unpublished.
func (d *Driver) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.store.GetVolume(id)
	if errors.Is(err, state.ErrNotFound) {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if err != nil {
		return nil, hostError(err, "read volume %s", id)
	}
	node := req.GetNodeId()
	if _, ok := v.Published[node]; !ok && node != "" {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if node == "" {
		v.Published = nil
	} else {
		delete(v.Published, node)
	}
	if err := d.store.PutVolume(v); err != nil {
		return nil, hostError(err, "record unpublication of volume %s", id)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// readyVolume returns a volume that exists and is complete.
func (d *Driver) readyVolume(id string) (state.Volume, error) {
	v, err := d.knownVolume(id)
	if err == nil && v.Phase != state.Ready {
		return v, errorf(codes.NotFound, "volume %q does not exist", id)
	}
	return v, err
}

// knownVolume reads volume id in whatever phase it is: NotFound when the
// driver has no record of it.
func (d *Driver) knownVolume(id string) (state.Volume, error) {
	v, err := d.store.GetVolume(id)
	if errors.Is(err, state.ErrNotFound) {
		return v, errorf(codes.NotFound, "volume %q does not exist", id)
	}
	if err != nil {
		return v, hostError(err, "read volume %s", id)
	}
	return v, nil
}

// countVolumes counts the volumes for which match holds.
func (d *Driver) countVolumes(match func(*state.Volume) bool) int {
	n := 0
	d.store.VisitVolumes(func(v *state.Volume) {
		if match(v) {
			n++
		}
	})
	return n
}

// nextProjectID allocates a quota project ID above every one in use. The
// caller holds spaceMu, which also covers recording the volume.
func (d *Driver) nextProjectID() uint32 {
	next := uint32(100000)
	d.store.VisitVolumes(func(v *state.Volume) {
		if v.ProjectID >= next {
			next = v.ProjectID + 1
		}
	})
	return next
}
