package csidriver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

// nodePathOf checks that path is where volume v is staged or published on
// this node and still mounted; the spec calls anything else "volume does
// not exist on the path": NotFound.
func (d *Driver) nodePathOf(v *state.Volume, path string) error {
	_, published := v.Targets[path]
	staged := v.Staged != nil && v.Staged.Path == path
	if !published && !staged {
		return errorf(codes.NotFound, "volume %s is not staged or published at %q", v.ID, path)
	}
	if staged && v.Staged.Block {
		return nil // raw block staging mounts nothing
	}
	mp, ok, err := d.mountAt(path)
	if err != nil {
		return hostError(err, "read mount table")
	}
	if !ok || !mountIsVolume(mp, v) {
		return errorf(codes.NotFound, "volume %s is not mounted at %q", v.ID, path)
	}
	return nil
}

// NodeGetVolumeStats implements csi.NodeServer. A directory volume reports
// the bytes its qgroup (or project) accounts against its limit; a
// filesystem on a block volume reports what statfs says, bytes and inodes;
// a raw block volume its size.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, errorf(codes.InvalidArgument, "volume path is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	if err := d.nodePathOf(&v, path); err != nil {
		return nil, err
	}
	block := (v.Staged != nil && v.Staged.Path == path && v.Staged.Block) || v.Targets[path].Block
	if block {
		size, err := d.host.DeviceSize(v.Staged.Device)
		if err != nil {
			return nil, hostError(err, "size of volume %s", id)
		}
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
			{Unit: csi.VolumeUsage_BYTES, Total: size},
		}}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, hostError(err, "statfs %s", path)
	}
	inodes := &csi.VolumeUsage{Unit: csi.VolumeUsage_INODES,
		Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)}
	if v.Kind == state.KindBlock {
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{
			Unit:      csi.VolumeUsage_BYTES,
			Total:     int64(st.Blocks) * st.Bsize,
			Available: int64(st.Bavail) * st.Bsize,
			Used:      int64(st.Blocks-st.Bfree) * st.Bsize,
		}, inodes}}, nil
	}
	used, limit, err := d.pool.DirUsage(ctx, id, v.ProjectID)
	if err != nil {
		return nil, hostError(err, "usage of volume %s", id)
	}
	if limit == 0 {
		limit = v.CapacityBytes
	}
	avail := limit - used
	if avail < 0 {
		avail = 0
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: limit, Used: used, Available: avail},
		inodes,
	}}, nil
}

// NodeExpandVolume implements csi.NodeServer. Directory volumes grew when
// the controller raised their limit; block volumes have their loop device
// re-read the file's size and their filesystem grown, online.
func (d *Driver) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, errorf(codes.InvalidArgument, "volume path is required")
	}
	if c := req.GetVolumeCapability(); c != nil {
		if err := checkCapability(c); err != nil {
			return nil, err
		}
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	if err := d.nodePathOf(&v, path); err != nil {
		return nil, err
	}
	if r := req.GetCapacityRange(); r.GetRequiredBytes() > v.CapacityBytes {
		return nil, errorf(codes.OutOfRange, "volume %s has %d bytes; expand it through the controller first", id, v.CapacityBytes)
	}
	if v.Kind == state.KindDir {
		return &csi.NodeExpandVolumeResponse{CapacityBytes: v.CapacityBytes}, nil
	}
	dev := v.Staged.Device
	if err := d.host.LoopRefreshSize(ctx, dev); err != nil {
		return nil, hostError(err, "refresh size of volume %s", id)
	}
	size, err := d.host.DeviceSize(dev)
	if err != nil {
		return nil, hostError(err, "size of volume %s", id)
	}
	if !v.Staged.Block && v.Formatted != "" && v.FilesystemBytes < size {
		if v.Staged.ReadOnly {
			return nil, errorf(codes.FailedPrecondition, "volume %s is staged read-only; its filesystem cannot grow", id)
		}
		if err := d.host.GrowFilesystem(ctx, dev, v.Staged.Path, v.Formatted); err != nil {
			return nil, hostError(err, "grow filesystem of volume %s", id)
		}
		v.FilesystemBytes = size
		if err := d.store.PutVolume(v); err != nil {
			return nil, hostError(err, "record expansion of volume %s", id)
		}
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}
