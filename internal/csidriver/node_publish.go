package csidriver

import (
	"context"
	"errors"
	"os"
	"reflect"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// NodePublishVolume implements csi.NodeServer: the staged directory or
// filesystem is bind mounted on the target directory, a raw block
// volume's loop device on the target file. Publishing a volume at a
// second target needs SINGLE_NODE_MULTI_WRITER; every other single-node
// mode answers FailedPrecondition, as the spec's table says. An
// ephemeral (inline) volume is created and published here
// (publishEphemeral).
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, staging := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, errorf(codes.InvalidArgument, "target path is required")
	}
	c := req.GetVolumeCapability()
	if err := checkCapability(c); err != nil {
		return nil, err
	}
	if req.GetVolumeContext()[ephemeralKey] == "true" {
		unlock := d.locks.Lock(volumeKey(id))
		defer unlock()
		return d.publishEphemeral(ctx, req)
	}
	if staging == "" {
		return nil, errorf(codes.FailedPrecondition, "staging target path is required: the volume must be staged first")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	if err := capabilityFits(&v, c); err != nil {
		return nil, errorf(codes.FailedPrecondition, "%w", err)
	}
	if v.Staged == nil || v.Staged.Path != staging {
		return nil, errorf(codes.FailedPrecondition, "volume %s is not staged at %s", id, staging)
	}
	if (c.GetBlock() != nil) != v.Staged.Block {
		return nil, errorf(codes.FailedPrecondition, "volume %s was staged for another access type", id)
	}
	if err := d.checkNodePath(target, id); err != nil {
		return nil, err
	}
	if target == staging {
		return nil, errorf(codes.InvalidArgument, "target path is the staging path")
	}
	mode := c.GetAccessMode().GetMode()
	t := state.Target{
		ReadOnly: req.GetReadonly() || req.GetPublishContext()[publishReadOnly] == "true" ||
			readerOnly(mode) || v.Staged.ReadOnly,
		Block:      c.GetBlock() != nil,
		AccessMode: int32(mode),
		MountFlags: c.GetMount().GetMountFlags(),
	}
	source := v.Staged.Path
	if t.Block {
		source = v.Staged.Device
	}
	err = d.publishAt(ctx, &v, source, target, t, func() error {
		for other, o := range v.Targets {
			if mode != csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER ||
				o.AccessMode != int32(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER) {
				return errorf(codes.FailedPrecondition, "volume %s is already published at %s and its access mode allows one target", id, other)
			}
		}
		if len(v.Targets) == 0 {
			if n := d.countVolumes(func(o *state.Volume) bool { return o.ID != id && len(o.Targets) > 0 }); int64(n) >= d.cfg.MaxVolumesPerNode {
				return errorf(codes.ResourceExhausted, "%d volumes are published on this node, the maximum", n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// publishAt ends every NodePublishVolume, of a staged volume and of an
// ephemeral one: a repeat at a target v is published at already must ask
// what the first asked (AlreadyExists otherwise, as the spec says) and
// keeps the first's Created mark; a new target must pass admit, which
// sees v's other publications. Then source (the staged directory or
// device, or an ephemeral volume's directory in the pool) is bound on
// the target and the publication recorded. The caller holds v's lock.
func (d *Driver) publishAt(ctx context.Context, v *state.Volume, source, target string, t state.Target, admit func() error) error {
	if old, ok := v.Targets[target]; ok {
		t.Created = old.Created
		if !reflect.DeepEqual(old, t) {
			return errorf(codes.AlreadyExists, "volume %s is published at %s with other arguments", v.ID, target)
		}
	} else if err := admit(); err != nil {
		return err
	}
	if err := d.publish(ctx, v, source, target, &t); err != nil {
		return err
	}
	if v.Targets == nil {
		v.Targets = map[string]state.Target{}
	}
	v.Targets[target] = t
	if err := d.store.PutVolume(*v); err != nil {
		return hostError(err, "record publication of volume %s", v.ID)
	}
	return nil
}

// publish does the host work of publishAt, idempotently: source bound on
// target.
func (d *Driver) publish(ctx context.Context, v *state.Volume, source, target string, t *state.Target) error {
	opts, err := hostops.ParseMountOptions(t.MountFlags)
	if err != nil {
		return errorf(codes.InvalidArgument, "mount flags: %w", err)
	}
	if len(opts.Data) > 0 && v.Kind == state.KindDir {
		return errorf(codes.InvalidArgument, "mount flags %v cannot apply to a directory volume", opts.Data)
	}
	// Filesystem options took effect at staging; a bind mount takes
	// only the generic flags.
	var flags []string
	for _, f := range t.MountFlags {
		if o, _ := hostops.ParseMountOptions([]string{f}); len(o.Data) == 0 {
			flags = append(flags, f)
		}
	}
	if t.ReadOnly {
		flags = append(flags, "ro")
	}
	opened, err := openTarget(target, t.Block)
	if err != nil {
		return err
	}
	defer opened.Close()
	t.Created = t.Created || opened.Created
	mp, mounted, err := d.mountAt(target)
	if err != nil {
		return hostError(err, "read mount table")
	}
	if mounted {
		if !mountIsVolume(mp, v) {
			return errorf(codes.FailedPrecondition, "target %s already holds another mount (%s)", target, mp.Source)
		}
		return nil
	}
	if err := d.host.BindMount(ctx, source, opened.Path(), flags); err != nil {
		if errors.Is(err, hostops.ErrBadMountOption) {
			return errorf(codes.InvalidArgument, "publish volume %s: %w", v.ID, err)
		}
		return hostError(err, "publish volume %s at %s", v.ID, target)
	}
	return nil
}

// NodeUnpublishVolume implements csi.NodeServer: unmount the volume from
// the target and, if the driver made the target directory or file when
// it published it, delete it. A path the driver has no publication of is
// never removed (only a mount of this volume on it is undone, for a
// publication whose record a crash lost). A target that does not exist
// is already unpublished. An ephemeral volume is deleted once unpublished.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, errorf(codes.InvalidArgument, "target path is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.knownVolume(id)
	if err != nil {
		return nil, err
	}
	if err := d.unmountAll(ctx, target, &v); err != nil {
		return nil, err
	}
	if t, ok := v.Targets[target]; ok {
		if t.Created {
			if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, hostError(err, "remove target %s", target)
			}
		}
		delete(v.Targets, target)
		if err := d.store.PutVolume(v); err != nil {
			return nil, hostError(err, "record unpublication of volume %s", id)
		}
	}
	if err := d.unpublishedEphemeral(ctx, &v); err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
