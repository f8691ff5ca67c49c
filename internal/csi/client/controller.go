package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// CreateVolume creates a volume, or returns the existing volume of the
// same name.
func (c *Client) CreateVolume(ctx context.Context, r *CreateVolumeRequest) (*Volume, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	resp, err := call(ctx, c, "CreateVolume", c.controller.CreateVolume, r.proto())
	if err != nil {
		return nil, err
	}
	v := resp.GetVolume()
	if v.GetVolumeId() == "" {
		return nil, fmt.Errorf("csi CreateVolume %q: the driver returned no volume ID", r.Name)
	}
	if v.GetCapacityBytes() < 0 {
		return nil, fmt.Errorf("csi CreateVolume %q: the driver returned capacity %d", r.Name, v.GetCapacityBytes())
	}
	return &Volume{
		ID:                 v.GetVolumeId(),
		CapacityBytes:      v.GetCapacityBytes(),
		Context:            v.GetVolumeContext(),
		AccessibleTopology: fromTopologies(v.GetAccessibleTopology()),
	}, nil
}

// DeleteVolume deletes a volume; a volume already gone is success, as the
// spec makes drivers answer.
func (c *Client) DeleteVolume(ctx context.Context, volumeID string, secrets map[string]string) error {
	if volumeID == "" {
		return errors.New("csi DeleteVolume: no volume ID")
	}
	_, err := call(ctx, c, "DeleteVolume", c.controller.DeleteVolume,
		&csi.DeleteVolumeRequest{VolumeId: volumeID, Secrets: secrets})
	return err
}

// ControllerPublish makes a volume available on a node and returns the
// publish context the node's calls need.
func (c *Client) ControllerPublish(ctx context.Context, r *PublishRequest) (map[string]string, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	resp, err := call(ctx, c, "ControllerPublishVolume", c.controller.ControllerPublishVolume,
		&csi.ControllerPublishVolumeRequest{
			VolumeId:         r.VolumeID,
			NodeId:           r.NodeID,
			VolumeCapability: r.Capability.proto(),
			Readonly:         r.ReadOnly,
			Secrets:          r.Secrets,
			VolumeContext:    r.Context,
		})
	if err != nil {
		return nil, err
	}
	return resp.GetPublishContext(), nil
}

// ControllerUnpublish undoes ControllerPublish; a volume or node already
// gone is success.
func (c *Client) ControllerUnpublish(ctx context.Context, volumeID, nodeID string, secrets map[string]string) error {
	if volumeID == "" || nodeID == "" {
		return fmt.Errorf("csi ControllerUnpublishVolume: volume %q, node %q: both are required", volumeID, nodeID)
	}
	_, err := call(ctx, c, "ControllerUnpublishVolume", c.controller.ControllerUnpublishVolume,
		&csi.ControllerUnpublishVolumeRequest{VolumeId: volumeID, NodeId: nodeID, Secrets: secrets})
	return err
}

// GetCapacity asks how many bytes are left for new volumes.
func (c *Client) GetCapacity(ctx context.Context, r *CapacityRequest) (Capacity, error) {
	if err := r.Validate(); err != nil {
		return Capacity{}, err
	}
	req := &csi.GetCapacityRequest{Parameters: r.Parameters}
	for _, cp := range r.Capabilities {
		req.VolumeCapabilities = append(req.VolumeCapabilities, cp.proto())
	}
	if r.Topology != nil {
		req.AccessibleTopology = &csi.Topology{Segments: r.Topology}
	}
	resp, err := call(ctx, c, "GetCapacity", c.controller.GetCapacity, req)
	if err != nil {
		return Capacity{}, err
	}
	out := Capacity{AvailableBytes: resp.GetAvailableCapacity()}
	if m := resp.GetMaximumVolumeSize(); m != nil {
		out.MaximumVolumeSize = m.GetValue()
	}
	if out.AvailableBytes < 0 || out.MaximumVolumeSize < 0 {
		return Capacity{}, fmt.Errorf("csi GetCapacity: the driver returned negative capacity %d/%d", out.AvailableBytes, out.MaximumVolumeSize)
	}
	return out, nil
}
