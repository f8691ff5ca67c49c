package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// NodeInfo is what a driver's NodeGetInfo says about this node.
type NodeInfo struct {
	// NodeID is the driver's name for the node (the CSINode's nodeID,
	// the ID ControllerPublish gets).
	NodeID string
	// MaxVolumes is how many volumes may be published on the node; 0
	// means no limit.
	MaxVolumes int64
	// Topology is the node's accessible topology segments.
	Topology map[string]string
}

// NodeGetInfo asks the driver who this node is.
func (c *Client) NodeGetInfo(ctx context.Context) (NodeInfo, error) {
	resp, err := call(ctx, c, "NodeGetInfo", c.node.NodeGetInfo, &csi.NodeGetInfoRequest{})
	if err != nil {
		return NodeInfo{}, err
	}
	return NodeInfo{
		NodeID:     resp.GetNodeId(),
		MaxVolumes: resp.GetMaxVolumesPerNode(),
		Topology:   resp.GetAccessibleTopology().GetSegments(),
	}, nil
}

// NodeCapabilities are the parts of a driver's Node service capabilities
// the node agent acts on.
type NodeCapabilities struct {
	// StageUnstage: the volume is staged once per node (NodeStageVolume)
	// before it is published into pods.
	StageUnstage bool
	// GetVolumeStats: NodeGetVolumeStats answers.
	GetVolumeStats bool
	// SingleNodeMultiWriter: the SINGLE_NODE_SINGLE_WRITER and
	// SINGLE_NODE_MULTI_WRITER access modes are understood.
	SingleNodeMultiWriter bool
	// VolumeMountGroup: the driver applies a pod's fsGroup itself when
	// the capability carries it.
	VolumeMountGroup bool
}

// NodeGetCapabilities reads the driver's Node service capabilities.
func (c *Client) NodeGetCapabilities(ctx context.Context) (NodeCapabilities, error) {
	resp, err := call(ctx, c, "NodeGetCapabilities", c.node.NodeGetCapabilities, &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		return NodeCapabilities{}, err
	}
	var out NodeCapabilities
	for _, nc := range resp.GetCapabilities() {
		switch nc.GetRpc().GetType() {
		case csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME:
			out.StageUnstage = true
		case csi.NodeServiceCapability_RPC_GET_VOLUME_STATS:
			out.GetVolumeStats = true
		case csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER:
			out.SingleNodeMultiWriter = true
		case csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP:
			out.VolumeMountGroup = true
		}
	}
	return out, nil
}

// NodeStageRequest asks a driver to stage a volume at a per-node path.
type NodeStageRequest struct {
	VolumeID string
	// PublishContext is what ControllerPublish returned (the
	// VolumeAttachment's status.attachmentMetadata).
	PublishContext map[string]string
	// StagingPath is the global mount path, a directory the CO made.
	StagingPath string
	Capability  Capability
	Secrets     map[string]string
	// Context is the volume context (the PV's volume attributes).
	Context map[string]string
}

// Validate checks the request.
func (r *NodeStageRequest) Validate() error {
	var errs []error
	if r.VolumeID == "" {
		errs = append(errs, errors.New("no volume ID"))
	}
	if r.StagingPath == "" {
		errs = append(errs, errors.New("no staging path"))
	}
	if err := r.Capability.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi NodeStageVolume %q: %w", r.VolumeID, err)
	}
	return nil
}

// LogValue logs the request without its secrets (their keys only).
func (r *NodeStageRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("volumeID", r.VolumeID),
		slog.String("stagingPath", r.StagingPath),
		slog.Any("secretKeys", slices.Sorted(maps.Keys(r.Secrets))),
	)
}

// NodeStageVolume stages a volume. Staging a volume already staged the
// same way succeeds, as the spec makes drivers answer.
func (c *Client) NodeStageVolume(ctx context.Context, r *NodeStageRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := call(ctx, c, "NodeStageVolume", c.node.NodeStageVolume, &csi.NodeStageVolumeRequest{
		VolumeId:          r.VolumeID,
		PublishContext:    r.PublishContext,
		StagingTargetPath: r.StagingPath,
		VolumeCapability:  r.Capability.proto(),
		Secrets:           r.Secrets,
		VolumeContext:     r.Context,
	})
	return err
}

// NodeUnstageVolume undoes NodeStageVolume; a volume not staged there is
// success.
func (c *Client) NodeUnstageVolume(ctx context.Context, volumeID, stagingPath string) error {
	if volumeID == "" || stagingPath == "" {
		return fmt.Errorf("csi NodeUnstageVolume: volume %q, staging path %q: both are required", volumeID, stagingPath)
	}
	_, err := call(ctx, c, "NodeUnstageVolume", c.node.NodeUnstageVolume,
		&csi.NodeUnstageVolumeRequest{VolumeId: volumeID, StagingTargetPath: stagingPath})
	return err
}

// NodePublishRequest asks a driver to make a volume appear at a pod's
// target path.
type NodePublishRequest struct {
	VolumeID       string
	PublishContext map[string]string
	// StagingPath is where the volume was staged; empty for drivers
	// without STAGE_UNSTAGE_VOLUME.
	StagingPath string
	// TargetPath is the path to publish at; its parent exists, the
	// driver makes the path itself.
	TargetPath string
	Capability Capability
	ReadOnly   bool
	Secrets    map[string]string
	// Context is the volume context, with the pod's information when
	// the driver asks for it.
	Context map[string]string
}

// Validate checks the request.
func (r *NodePublishRequest) Validate() error {
	var errs []error
	if r.VolumeID == "" {
		errs = append(errs, errors.New("no volume ID"))
	}
	if r.TargetPath == "" {
		errs = append(errs, errors.New("no target path"))
	}
	if err := r.Capability.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi NodePublishVolume %q: %w", r.VolumeID, err)
	}
	return nil
}

// LogValue logs the request without its secrets (their keys only).
func (r *NodePublishRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("volumeID", r.VolumeID),
		slog.String("targetPath", r.TargetPath),
		slog.Bool("readOnly", r.ReadOnly),
		slog.Any("secretKeys", slices.Sorted(maps.Keys(r.Secrets))),
	)
}

// NodePublishVolume publishes a volume. Publishing it again at the same
// target with the same arguments succeeds.
func (c *Client) NodePublishVolume(ctx context.Context, r *NodePublishRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := call(ctx, c, "NodePublishVolume", c.node.NodePublishVolume, &csi.NodePublishVolumeRequest{
		VolumeId:          r.VolumeID,
		PublishContext:    r.PublishContext,
		StagingTargetPath: r.StagingPath,
		TargetPath:        r.TargetPath,
		VolumeCapability:  r.Capability.proto(),
		Readonly:          r.ReadOnly,
		Secrets:           r.Secrets,
		VolumeContext:     r.Context,
	})
	return err
}

// NodeUnpublishVolume undoes NodePublishVolume; a target that holds
// nothing is success.
func (c *Client) NodeUnpublishVolume(ctx context.Context, volumeID, targetPath string) error {
	if volumeID == "" || targetPath == "" {
		return fmt.Errorf("csi NodeUnpublishVolume: volume %q, target path %q: both are required", volumeID, targetPath)
	}
	_, err := call(ctx, c, "NodeUnpublishVolume", c.node.NodeUnpublishVolume,
		&csi.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: targetPath})
	return err
}

// VolumeStats is a NodeGetVolumeStats answer. A figure the driver left
// out is -1.
type VolumeStats struct {
	AvailableBytes, TotalBytes, UsedBytes    int64
	AvailableInodes, TotalInodes, UsedInodes int64
}

// NodeGetVolumeStats reads the usage of a published volume at
// volumePath (stagingPath may be empty).
func (c *Client) NodeGetVolumeStats(ctx context.Context, volumeID, volumePath, stagingPath string) (VolumeStats, error) {
	if volumeID == "" || volumePath == "" {
		return VolumeStats{}, fmt.Errorf("csi NodeGetVolumeStats: volume %q, path %q: both are required", volumeID, volumePath)
	}
	resp, err := call(ctx, c, "NodeGetVolumeStats", c.node.NodeGetVolumeStats, &csi.NodeGetVolumeStatsRequest{
		VolumeId: volumeID, VolumePath: volumePath, StagingTargetPath: stagingPath})
	if err != nil {
		return VolumeStats{}, err
	}
	out := VolumeStats{AvailableBytes: -1, TotalBytes: -1, UsedBytes: -1, AvailableInodes: -1, TotalInodes: -1, UsedInodes: -1}
	for _, u := range resp.GetUsage() {
		switch u.GetUnit() {
		case csi.VolumeUsage_BYTES:
			out.AvailableBytes, out.TotalBytes, out.UsedBytes = u.GetAvailable(), u.GetTotal(), u.GetUsed()
		case csi.VolumeUsage_INODES:
			out.AvailableInodes, out.TotalInodes, out.UsedInodes = u.GetAvailable(), u.GetTotal(), u.GetUsed()
		}
	}
	return out, nil
}
