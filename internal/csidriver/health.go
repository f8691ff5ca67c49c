package csidriver

import (
	"context"
	"errors"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

type healthEntry = csi.VolumeHealth_VolumeHealthEntry

func problem(s csi.VolumeHealthErrorType, reason, msg string) *healthEntry {
	return &healthEntry{Status: s, Reason: reason, Message: msg}
}

// backingHealth checks a volume's data in the pool: there, whole, and
// reachable. poolErr is what d.pool.Healthy said, checked once per request.
func (d *Driver) backingHealth(ctx context.Context, v *state.Volume, poolErr error) []*healthEntry {
	if poolErr != nil {
		return []*healthEntry{problem(csi.VolumeHealthErrorType_INACCESSIBLE, "PoolUnavailable", poolErr.Error())}
	}
	var out []*healthEntry
	if v.Kind == state.KindDir {
		fi, err := os.Stat(d.pool.DirPath(v.ID))
		if err != nil || !fi.IsDir() {
			return []*healthEntry{problem(csi.VolumeHealthErrorType_DATA_LOSS, "DataMissing", "the volume's directory is missing from the pool")}
		}
		if used, limit, err := d.pool.DirUsage(ctx, v.ID, v.ProjectID); err == nil && limit > 0 && used >= limit {
			out = append(out, problem(csi.VolumeHealthErrorType_DEGRADED, "VolumeFull", "the volume has used its whole capacity"))
		}
		return out
	}
	size, err := d.pool.BlockSize(v.ID)
	if err != nil {
		return []*healthEntry{problem(csi.VolumeHealthErrorType_DATA_LOSS, "DataMissing", "the volume's backing file is missing from the pool")}
	}
	if size < v.CapacityBytes {
		out = append(out, problem(csi.VolumeHealthErrorType_DEGRADED, "SizeMismatch", "the backing file is smaller than the volume"))
	}
	return out
}

// nodeHealth adds what this node sees: the loop device still backed by
// the volume's file, the staging and publish mounts still in place.
func (d *Driver) nodeHealth(ctx context.Context, v *state.Volume) []*healthEntry {
	out := d.backingHealth(ctx, v, d.pool.Healthy())
	if v.Staged != nil {
		if v.Kind == state.KindBlock {
			dev, err := d.host.LoopFind(d.pool.BlockPath(v.ID))
			if err != nil || dev != v.Staged.Device {
				out = append(out, problem(csi.VolumeHealthErrorType_INACCESSIBLE, "LoopDeviceDetached", "the volume's loop device is gone"))
			}
		}
		if !v.Staged.Block {
			if mp, ok, err := d.mountAt(v.Staged.Path); err != nil || !ok || !mountIsVolume(mp, v) {
				out = append(out, problem(csi.VolumeHealthErrorType_INACCESSIBLE, "StagingMountMissing", "the volume is not mounted at "+v.Staged.Path))
			}
		}
	}
	for t := range v.Targets {
		if mp, ok, err := d.mountAt(t); err != nil || !ok || !mountIsVolume(mp, v) {
			out = append(out, problem(csi.VolumeHealthErrorType_INACCESSIBLE, "PublishMountMissing", "the volume is not mounted at "+t))
		}
	}
	return out
}

// ControllerGetVolumeHealth implements csi.ControllerServer.
func (d *Driver) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	v, err := d.readyVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
		VolumeId: v.ID, HealthStatuses: d.backingHealth(ctx, &v, d.pool.Healthy())}}, nil
}

// ControllerListVolumeHealth implements csi.ControllerServer: the volumes
// with a problem, paged like ListVolumes.
func (d *Driver) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	var ids []string
	var health []*csi.VolumeHealth
	poolErr := d.pool.Healthy()
	for _, v := range d.store.ListVolumes() {
		if v.Phase != state.Ready {
			continue
		}
		if entries := d.backingHealth(ctx, &v, poolErr); len(entries) > 0 {
			ids = append(ids, v.ID)
			health = append(health, &csi.VolumeHealth{VolumeId: v.ID, HealthStatuses: entries})
		}
	}
	start, end, next, err := page(ids, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerListVolumeHealthResponse{Entries: health[start:end], NextToken: next}, nil
}

// NodeGetVolumeHealth implements csi.NodeServer.
func (d *Driver) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{
		VolumeId: v.ID, HealthStatuses: d.nodeHealth(ctx, &v)}}, nil
}

// NodeGetStorageHealth implements csi.NodeServer: the pool reachable, and
// not nearly full.
func (d *Driver) NodeGetStorageHealth(ctx context.Context, _ *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	resp := &csi.NodeGetStorageHealthResponse{}
	if err := d.pool.Healthy(); err != nil {
		resp.BackendHealth = append(resp.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: csi.StorageHealthErrorType_STORAGE_UNREACHABLE, Reason: "PoolUnavailable", Message: err.Error()})
		return resp, nil
	}
	total, free, err := d.pool.Space()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, hostError(err, "pool space")
	}
	if total > 0 && free*20 < total {
		resp.BackendHealth = append(resp.BackendHealth, &csi.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: csi.StorageHealthErrorType_STORAGE_DEGRADED, Reason: "PoolAlmostFull",
			Message: "less than 5% of the pool is free"})
	}
	return resp, nil
}
