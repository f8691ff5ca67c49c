package csidriver

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// ControllerGetCapabilities implements csi.ControllerServer.
func (d *Driver) ControllerGetCapabilities(ctx context.Context, _ *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_READONLY,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.ControllerServiceCapability_RPC_MODIFY_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// ValidateVolumeCapabilities implements csi.ControllerServer. Capabilities
// the volume cannot serve are answered without a confirmation and with the
// reason in the message.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	caps := req.GetVolumeCapabilities()
	if len(caps) == 0 {
		return nil, errorf(codes.InvalidArgument, "volume capabilities are required")
	}
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	unconfirmed := func(msg string) (*csi.ValidateVolumeCapabilitiesResponse, error) {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: msg}, nil
	}
	for _, c := range caps {
		if err := checkCapability(c); err != nil {
			return unconfirmed(err.Error())
		}
		if err := capabilityFits(&v, c); err != nil {
			return unconfirmed(err.Error())
		}
	}
	if len(req.GetParameters()) > 0 {
		p, err := parseParameters(req.GetParameters(), caps)
		if err != nil {
			return unconfirmed(err.Error())
		}
		if p.kind != v.Kind || (p.fsType != "" && p.fsType != v.FSType) {
			return unconfirmed("parameters do not describe this volume")
		}
	}
	if err := checkMutableParameters(req.GetMutableParameters()); err != nil {
		return unconfirmed(err.Error())
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: caps,
		Parameters:         req.GetParameters(),
		MutableParameters:  req.GetMutableParameters(),
	}}, nil
}

// page cuts a sorted list of IDs at a page token (the first ID of the
// page) and max entries; it returns the range and the next token.
func page(ids []string, token string, max int32) (start, end int, next string, err error) {
	if max < 0 {
		return 0, 0, "", errorf(codes.InvalidArgument, "max_entries must not be negative")
	}
	if token != "" && !validPageToken(token) {
		return 0, 0, "", errorf(codes.Aborted, "starting_token %q is not one this driver issued", token)
	}
	start = sort.SearchStrings(ids, token)
	end = len(ids)
	if max > 0 && start+int(max) < end {
		end = start + int(max)
		next = ids[end]
	}
	return start, end, next, nil
}

// ListVolumes implements csi.ControllerServer. Pages are cut by volume ID,
// so volumes created or deleted between pages neither repeat nor shift
// the others.
func (d *Driver) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	var vols []state.Volume
	var ids []string
	for _, v := range d.store.ListVolumes() {
		if v.Phase == state.Ready {
			vols = append(vols, v)
			ids = append(ids, v.ID)
		}
	}
	start, end, next, err := page(ids, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &csi.ListVolumesResponse{NextToken: next}
	for i := start; i < end; i++ {
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{
			Volume: d.csiVolume(&vols[i]),
			Status: &csi.ListVolumesResponse_VolumeStatus{PublishedNodeIds: publishedNodes(&vols[i])},
		})
	}
	return resp, nil
}

func publishedNodes(v *state.Volume) []string {
	return slices.Sorted(maps.Keys(v.Published))
}

// ControllerGetVolume implements csi.ControllerServer.
func (d *Driver) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	v, err := d.readyVolume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: d.csiVolume(&v),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{PublishedNodeIds: publishedNodes(&v)},
	}, nil
}

// GetCapacity implements csi.ControllerServer: the bytes new volumes can
// still take on this node, nothing for any other topology or for
// capabilities the driver cannot serve.
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if t := req.GetAccessibleTopology(); t != nil && t.GetSegments()[TopologyKey] != d.cfg.NodeID {
		return &csi.GetCapacityResponse{AvailableCapacity: 0}, nil
	}
	for _, c := range req.GetVolumeCapabilities() {
		if checkCapability(c) != nil {
			return &csi.GetCapacityResponse{AvailableCapacity: 0}, nil
		}
	}
	p, err := parseParameters(req.GetParameters(), req.GetVolumeCapabilities())
	if err != nil {
		return nil, err
	}
	_, avail, err := d.available()
	if err != nil {
		return nil, hostError(err, "pool capacity")
	}
	min := minSize(p.kind, p.fsType)
	if avail < min {
		avail = 0
	}
	return &csi.GetCapacityResponse{
		AvailableCapacity: avail,
		MaximumVolumeSize: wrapperspb.Int64(avail / allocUnit * allocUnit),
		MinimumVolumeSize: wrapperspb.Int64(min),
	}, nil
}

// ControllerExpandVolume implements csi.ControllerServer. Directory
// volumes take the new limit at once; block volumes grow their file and
// ask the node to refresh the loop device and grow the filesystem.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, errorf(codes.InvalidArgument, "capacity range is required")
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
	if c := req.GetVolumeCapability(); c != nil {
		if err := capabilityFits(&v, c); err != nil {
			return nil, errorf(codes.InvalidArgument, "%w", err)
		}
	}
	size, err := volumeSize(req.GetCapacityRange(), v.CapacityBytes, minSize(v.Kind, v.Formatted))
	if err != nil {
		return nil, err
	}
	nodeExpand := v.Kind == state.KindBlock
	if size <= v.CapacityBytes {
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: v.CapacityBytes,
			NodeExpansionRequired: nodeExpand && v.FilesystemBytes < v.CapacityBytes && v.Formatted != ""}, nil
	}
	if err := d.grow(ctx, &v, size); err != nil {
		return nil, err
	}
	d.logger(ctx).Info("volume expanded", "volume", id, "bytes", size)
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: size, NodeExpansionRequired: nodeExpand}, nil
}

// grow checks that the pool can hold v grown to size, grows its backing
// and records the new size, all under spaceMu: a create or another expand
// cannot promise the same free bytes in between.
func (d *Driver) grow(ctx context.Context, v *state.Volume, size int64) error {
	d.spaceMu.Lock()
	defer d.spaceMu.Unlock()
	if err := d.fitsPool(size, size-v.CapacityBytes); err != nil {
		return err
	}
	var err error
	if v.Kind == state.KindDir {
		err = d.pool.SetDirLimit(ctx, v.ID, size, v.ProjectID)
	} else {
		err = d.pool.ResizeBlock(ctx, v.ID, size)
	}
	if err != nil {
		return hostError(err, "expand volume %s", v.ID)
	}
	v.CapacityBytes = size
	if err := d.store.PutVolume(*v); err != nil {
		return hostError(err, "record expansion of volume %s", v.ID)
	}
	return nil
}

// ControllerModifyVolume implements csi.ControllerServer: the mutable
// parameters (compression) apply to new writes at once.
func (d *Driver) ControllerModifyVolume(ctx context.Context, req *csi.ControllerModifyVolumeRequest) (*csi.ControllerModifyVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, errorf(codes.InvalidArgument, "volume ID is required")
	}
	if err := checkMutableParameters(req.GetMutableParameters()); err != nil {
		return nil, err
	}
	unlock := d.locks.Lock(volumeKey(id))
	defer unlock()
	v, err := d.readyVolume(id)
	if err != nil {
		return nil, err
	}
	if algo, ok := req.GetMutableParameters()[MutableCompression]; ok {
		if err := d.pool.SetCompression(ctx, d.volumePath(&v), algo); err != nil {
			if errors.Is(err, hostops.ErrNotSupported) {
				return nil, errorf(codes.InvalidArgument, "volume %s: %w", id, err)
			}
			return nil, hostError(err, "set compression on volume %s", id)
		}
	}
	if v.MutableParameters == nil {
		v.MutableParameters = map[string]string{}
	}
	for k, val := range req.GetMutableParameters() {
		v.MutableParameters[k] = val
	}
	if err := d.store.PutVolume(v); err != nil {
		return nil, hostError(err, "record modification of volume %s", id)
	}
	return &csi.ControllerModifyVolumeResponse{}, nil
}
