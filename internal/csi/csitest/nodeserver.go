package csitest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// NodeOptions shape the fake Node service.
type NodeOptions struct {
	Name string
	// NoStage drops STAGE_UNSTAGE_VOLUME; SingleNodeMultiWriter and
	// VolumeMountGroup add those capabilities.
	NoStage, SingleNodeMultiWriter, VolumeMountGroup bool
}

// Node is a fake CSI Node service (with Identity) on its own socket. It
// records the last request of each call, keeps what is staged and
// published, and creates (and on unpublish removes) the target
// directory as a real driver does. It mounts nothing.
type Node struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer

	opts NodeOptions
	// Endpoint is unix://<socket>.
	Endpoint string

	mu        sync.Mutex
	staged    map[string]string // staging path -> volume ID
	published map[string]string // target path -> volume ID
	last      map[string]proto.Message
	fail      map[string]error
	calls     map[string]int
}

// ServeNode starts a fake Node service on a socket in a temporary
// directory; it stops when the test ends.
func ServeNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "fake.csi.volplane.io"
	}
	n := &Node{opts: opts, staged: map[string]string{}, published: map[string]string{},
		last: map[string]proto.Message{}, fail: map[string]error{}, calls: map[string]int{}}
	sock := filepath.Join(t.TempDir(), "csi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	n.Endpoint = "unix://" + sock
	srv := grpc.NewServer(grpc.UnaryInterceptor(n.intercept))
	csi.RegisterIdentityServer(srv, n)
	csi.RegisterNodeServer(srv, n)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return n
}

// Fail makes every later call of method fail with code and msg; code OK
// clears it.
func (n *Node) Fail(method string, code codes.Code, msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if code == codes.OK {
		delete(n.fail, method)
		return
	}
	n.fail[method] = status.Error(code, msg)
}

// Calls is how many times method was called.
func (n *Node) Calls(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// LastStage and LastPublish are the last requests of those calls, nil
// before the first.
func (n *Node) LastStage() *csi.NodeStageVolumeRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, _ := n.last["NodeStageVolume"].(*csi.NodeStageVolumeRequest)
	return r
}

// LastPublish is the last NodePublishVolume request.
func (n *Node) LastPublish() *csi.NodePublishVolumeRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, _ := n.last["NodePublishVolume"].(*csi.NodePublishVolumeRequest)
	return r
}

// Staged and Published return copies of path -> volume ID.
func (n *Node) Staged() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return clone(n.staged)
}

// Published returns target path -> volume ID.
func (n *Node) Published() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return clone(n.published)
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (n *Node) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := filepath.Base(info.FullMethod)
	n.mu.Lock()
	n.calls[method]++
	if m, ok := req.(proto.Message); ok {
		n.last[method] = proto.Clone(m)
	}
	err := n.fail[method]
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (n *Node) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: n.opts.Name, VendorVersion: "test"}, nil
}

func (n *Node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: "fake-node"}, nil
}

func (n *Node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var types []csi.NodeServiceCapability_RPC_Type
	if !n.opts.NoStage {
		types = append(types, csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME)
	}
	types = append(types, csi.NodeServiceCapability_RPC_GET_VOLUME_STATS)
	if n.opts.SingleNodeMultiWriter {
		types = append(types, csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER)
	}
	if n.opts.VolumeMountGroup {
		types = append(types, csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP)
	}
	var caps []*csi.NodeServiceCapability
	for _, t := range types {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (n *Node) NodeStageVolume(_ context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	if n.opts.NoStage {
		return nil, status.Error(codes.Unimplemented, "no staging")
	}
	if req.GetVolumeId() == "" || req.GetStagingTargetPath() == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume ID, staging path and capability are required")
	}
	if fi, err := os.Stat(req.GetStagingTargetPath()); err != nil || !fi.IsDir() {
		return nil, status.Errorf(codes.FailedPrecondition, "staging path %s is not a directory", req.GetStagingTargetPath())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.staged[req.GetStagingTargetPath()] = req.GetVolumeId()
	return &csi.NodeStageVolumeResponse{}, nil
}

func (n *Node) NodeUnstageVolume(_ context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for t, id := range n.published {
		if id == req.GetVolumeId() {
			return nil, status.Errorf(codes.FailedPrecondition, "volume is still published at %s", t)
		}
	}
	delete(n.staged, req.GetStagingTargetPath())
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (n *Node) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if req.GetVolumeId() == "" || target == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume ID, target path and capability are required")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.opts.NoStage && n.staged[req.GetStagingTargetPath()] != req.GetVolumeId() {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %q", req.GetVolumeId(), req.GetStagingTargetPath())
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	n.published[target] = req.GetVolumeId()
	return &csi.NodePublishVolumeResponse{}, nil
}

func (n *Node) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := os.Remove(req.GetTargetPath()); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	delete(n.published, req.GetTargetPath())
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (n *Node) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.published[req.GetVolumePath()] != req.GetVolumeId() {
		return nil, status.Errorf(codes.NotFound, "volume %s is not published at %s", req.GetVolumeId(), req.GetVolumePath())
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: 1000, Used: 400, Available: 600},
		{Unit: csi.VolumeUsage_INODES, Total: 100, Used: 10, Available: 90},
	}}, nil
}
