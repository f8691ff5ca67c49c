package client

import (
	"context"

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
