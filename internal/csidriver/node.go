package csidriver

import (
	"context"
	"reflect"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

var _ csi.NodeServer = (*Driver)(nil)

// NodeGetInfo implements csi.NodeServer.
func (d *Driver) NodeGetInfo(ctx context.Context, _ *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             d.cfg.NodeID,
		MaxVolumesPerNode:  d.cfg.MaxVolumesPerNode,
		AccessibleTopology: d.topology(),
	}, nil
}

// NodeGetCapabilities implements csi.NodeServer.
func (d *Driver) NodeGetCapabilities(ctx context.Context, _ *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeStageVolume implements csi.NodeServer: a directory volume is bind
// mounted on the staging path; a block volume is attached to a loop
// device, formatted if it holds no filesystem yet and mounted there (or,
// for raw block access, only attached).
func (d *Driver) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, errorf(codes.InvalidArgument, "staging target path is required")
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
	if err := capabilityFits(&v, c); err != nil {
		return nil, errorf(codes.FailedPrecondition, "%w", err)
	}
	if err := d.checkNodePath(path, id); err != nil {
		return nil, err
	}
	want := state.Staging{
		Path:       path,
		Block:      c.GetBlock() != nil,
		ReadOnly:   req.GetPublishContext()[publishReadOnly] == "true" || readerOnly(c.GetAccessMode().GetMode()),
		AccessMode: int32(c.GetAccessMode().GetMode()),
		MountFlags: c.GetMount().GetMountFlags(),
	}
	fresh := v.Staged == nil
	if !fresh {
		if v.Staged.Path != path {
			return nil, errorf(codes.FailedPrecondition, "volume %s is staged at %s", id, v.Staged.Path)
		}
		want.Device = v.Staged.Device
		if !reflect.DeepEqual(*v.Staged, want) {
			return nil, errorf(codes.AlreadyExists, "volume %s is staged at %s with another capability", id, path)
		}
	} else if n := d.countVolumes(func(o *state.Volume) bool { return o.ID != id && o.Staged != nil }); int64(n) >= d.cfg.MaxVolumesPerNode {
		return nil, errorf(codes.ResourceExhausted, "%d volumes are staged on this node, the maximum", n)
	}
	if err := d.stage(ctx, &v, &want, c.GetMount().GetFsType()); err != nil {
		if fresh && want.Device != "" {
			_ = d.host.LoopDetach(context.WithoutCancel(ctx), want.Device)
		}
		return nil, err
	}
	v.Staged = &want
	if err := d.store.PutVolume(v); err != nil {
		return nil, hostError(err, "record staging of volume %s", id)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

// stage does the host work of NodeStageVolume. It is idempotent: a mount
// of this volume already at the path is kept.
func (d *Driver) stage(ctx context.Context, v *state.Volume, stg *state.Staging, fsType string) error {
	opts, err := hostops.ParseMountOptions(stg.MountFlags)
	if err != nil {
		return errorf(codes.InvalidArgument, "mount flags: %w", err)
	}
	flags := stg.MountFlags
	if stg.ReadOnly {
		flags = append(append([]string(nil), flags...), "ro")
	}
	if v.Kind == state.KindBlock {
		dev, err := d.host.LoopAttach(ctx, d.pool.BlockPath(v.ID))
		if err != nil {
			return hostError(err, "attach volume %s", v.ID)
		}
		stg.Device = dev
		if stg.Block {
			return nil
		}
	} else if len(opts.Data) > 0 {
		return errorf(codes.InvalidArgument, "mount flags %v cannot apply to a directory volume", opts.Data)
	}
	target, err := openTarget(stg.Path, false)
	if err != nil {
		return err
	}
	defer target.Close()
	probe := *v
	probe.Staged = stg
	mp, mounted, err := d.mountAt(stg.Path)
	if err != nil {
		return hostError(err, "read mount table")
	}
	if mounted && !mountIsVolume(mp, &probe) {
		return errorf(codes.FailedPrecondition, "staging path %s already holds another mount (%s)", stg.Path, mp.Source)
	}
	if v.Kind == state.KindDir {
		if !mounted {
			if err := d.host.BindMount(ctx, d.pool.DirPath(v.ID), target.Path(), flags); err != nil {
				return hostError(err, "mount volume %s", v.ID)
			}
		}
		return nil
	}
	return d.stageFilesystem(ctx, v, stg, target, fsType, flags, mounted)
}

// stageFilesystem formats a block volume if needed, mounts it and grows
// the filesystem to the device when the volume was expanded meanwhile.
func (d *Driver) stageFilesystem(ctx context.Context, v *state.Volume, stg *state.Staging, target *hostops.Target, fsType string, flags []string, mounted bool) error {
	want := fsType
	if want == "" {
		want = v.FSType
	}
	have, err := d.host.ProbeFilesystem(ctx, stg.Device)
	if err != nil {
		return hostError(err, "probe volume %s", v.ID)
	}
	size, err := d.host.DeviceSize(stg.Device)
	if err != nil {
		return hostError(err, "size of volume %s", v.ID)
	}
	switch {
	case have == "" && v.Formatted != "":
		// Formatting is only ever done to a volume that never held a
		// filesystem; one that did and now shows none is damaged, and
		// mkfs would destroy what is left of it.
		return errorf(codes.DataLoss, "volume %s was formatted %s but no filesystem is found on it; refusing to format it again", v.ID, v.Formatted)
	case have == "" && stg.ReadOnly:
		return errorf(codes.FailedPrecondition, "volume %s holds no filesystem and is staged read-only", v.ID)
	case have == "":
		if want == "" {
			want = "ext4"
		}
		if err := d.host.Mkfs(ctx, stg.Device, want); err != nil {
			return hostError(err, "format volume %s", v.ID)
		}
		have = want
		v.FilesystemBytes = size
	case want != "" && want != have:
		return errorf(codes.FailedPrecondition, "volume %s holds %s, not %s", v.ID, have, want)
	}
	v.Formatted = have
	if have == "xfs" {
		// A restored or cloned XFS volume carries its source's UUID,
		// and XFS refuses a second mount of a UUID it already has.
		flags = append(append([]string(nil), flags...), "nouuid")
	}
	grow := !stg.ReadOnly && v.FilesystemBytes < size
	if grow && !mounted && strings.HasPrefix(have, "ext") {
		// ext2/3/4 grow offline before the mount: growing them online
		// needs CAP_SYS_RESOURCE, which a node plugin may lack.
		if err := d.host.GrowFilesystem(ctx, stg.Device, "", have); err != nil {
			return hostError(err, "grow filesystem of volume %s", v.ID)
		}
		v.FilesystemBytes, grow = size, false
	}
	if !mounted {
		if err := d.host.Mount(ctx, stg.Device, target.Path(), have, flags); err != nil {
			return hostError(err, "mount volume %s", v.ID)
		}
	}
	if grow {
		if err := d.host.GrowFilesystem(ctx, stg.Device, stg.Path, have); err != nil {
			return hostError(err, "grow filesystem of volume %s", v.ID)
		}
		v.FilesystemBytes = size
	}
	return nil
}

// NodeUnstageVolume implements csi.NodeServer. A volume that is not staged
// (there) is already unstaged; one still published is refused.
func (d *Driver) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, errorf(codes.InvalidArgument, "staging target path is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.knownVolume(id)
	if err != nil {
		return nil, err
	}
	if v.Staged == nil || v.Staged.Path != path {
		// A crash between mounting and recording may have left a
		// mount of this volume behind; anything else is not ours.
		if v.Kind == state.KindDir {
			if mp, ok, err := d.mountAt(path); err == nil && ok && mountIsVolume(mp, &v) {
				if err := d.host.Unmount(ctx, path); err != nil {
					return nil, hostError(err, "unmount %s", path)
				}
			}
		}
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	for t := range v.Targets {
		return nil, errorf(codes.FailedPrecondition, "volume %s is still published at %s", id, t)
	}
	if err := d.unmountAll(ctx, path, &v); err != nil {
		return nil, err
	}
	if v.Kind == state.KindBlock {
		if err := hostops.DetachFile(ctx, d.host, d.pool.BlockPath(id)); err != nil {
			return nil, hostError(err, "detach volume %s", id)
		}
	}
	v.Staged = nil
	if err := d.store.PutVolume(v); err != nil {
		return nil, hostError(err, "record unstaging of volume %s", id)
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// unmountAll removes every mount of volume v stacked at path.
func (d *Driver) unmountAll(ctx context.Context, path string, v *state.Volume) error {
	for i := 0; i < 16; i++ {
		mp, ok, err := d.mountAt(path)
		if err != nil {
			return hostError(err, "read mount table")
		}
		if !ok {
			return nil
		}
		if !mountIsVolume(mp, v) {
			return errorf(codes.FailedPrecondition, "%s holds a mount (%s) that is not volume %s", path, mp.Source, v.ID)
		}
		if err := d.host.Unmount(ctx, path); err != nil {
			return hostError(err, "unmount %s", path)
		}
	}
	return errorf(codes.Internal, "%s still mounted after repeated unmounts", path)
}
