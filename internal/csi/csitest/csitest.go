// Package csitest is an in-memory CSI driver (Identity and Controller
// services) served on a unix socket, for the unit tests of volplane's CSI
// client and controllers. It keeps volumes and publications in maps,
// answers as the spec asks (idempotent by name, not-found is success on
// delete), and lets a test make any call fail with a chosen gRPC status.
// ServeNode (nodeserver.go) is a fake Node service on a socket of its own,
// for the node agent's CSI plugin. It is a test fake: real drivers are
// tested with the built-in driver. Proxy (proxy.go) is no fake: it sits in
// front of a real driver, forwards every call and can hold one answer, for
// the crash tests that kill a caller between a driver's work and its
// record of it.
package csitest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TopologyKey is the fake driver's topology key.
const TopologyKey = "topology.csitest.volplane.io/zone"

// Options shape the fake driver.
type Options struct {
	Name string
	// NoPublish drops PUBLISH_UNPUBLISH_VOLUME; NoTopology drops
	// VOLUME_ACCESSIBILITY_CONSTRAINTS; NoCapacity drops GET_CAPACITY.
	NoPublish, NoTopology, NoCapacity bool
	// Capacity is the bytes the driver has; MaxVolumeSize is reported by
	// GetCapacity.
	Capacity, MaxVolumeSize int64
}

// Volume is a volume the fake holds.
type Volume struct {
	ID, Name   string
	Bytes      int64
	Parameters map[string]string
	Secrets    map[string]string
	Topology   map[string]string
	Requisite  []map[string]string
	Preferred  []map[string]string
	// Source is the volume it was cloned from.
	Source string
}

// Driver is the fake driver.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer

	opts Options
	// Endpoint is unix://<socket>.
	Endpoint string

	mu        sync.Mutex
	volumes   map[string]*Volume           // by name
	published map[string]map[string]string // volume ID -> node ID -> secrets key count
	fail      map[string]error
	calls     map[string]int
	nextID    int
}

// Serve starts a fake driver on a socket in a temporary directory; it
// stops when the test ends.
func Serve(t testing.TB, opts Options) *Driver {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "fake.csi.volplane.io"
	}
	if opts.Capacity == 0 {
		opts.Capacity = 100 << 30
	}
	d := &Driver{opts: opts, volumes: map[string]*Volume{}, published: map[string]map[string]string{},
		fail: map[string]error{}, calls: map[string]int{}}
	sock := filepath.Join(t.TempDir(), "csi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d.Endpoint = "unix://" + sock
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.intercept))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return d
}

// Fail makes every later call of method (e.g. "CreateVolume") fail with
// code and msg; code OK clears it.
func (d *Driver) Fail(method string, code codes.Code, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if code == codes.OK {
		delete(d.fail, method)
		return
	}
	d.fail[method] = status.Error(code, msg)
}

// Calls is how many times method was called.
func (d *Driver) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// Volumes returns a copy of the volumes by name.
func (d *Driver) Volumes() map[string]Volume {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]Volume{}
	for n, v := range d.volumes {
		out[n] = *v
	}
	return out
}

// Published returns the node IDs volumeID is published to.
func (d *Driver) Published(volumeID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.published[volumeID] {
		out = append(out, n)
	}
	return out
}

func (d *Driver) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := filepath.Base(info.FullMethod)
	d.mu.Lock()
	d.calls[method]++
	err := d.fail[method]
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.opts.Name, VendorVersion: "test"}, nil
}

func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	svc := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	caps := []*csi.PluginCapability{svc(csi.PluginCapability_Service_CONTROLLER_SERVICE)}
	if !d.opts.NoTopology {
		caps = append(caps, svc(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS))
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	rpc := func(t csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
		return &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}}
	}
	caps := []*csi.ControllerServiceCapability{rpc(csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME)}
	if !d.opts.NoPublish {
		caps = append(caps, rpc(csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME))
	}
	if !d.opts.NoCapacity {
		caps = append(caps, rpc(csi.ControllerServiceCapability_RPC_GET_CAPACITY))
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *Driver) used() int64 {
	var n int64
	for _, v := range d.volumes {
		n += v.Bytes
	}
	return n
}

func (d *Driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" || len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "name and capabilities are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	size := req.GetCapacityRange().GetRequiredBytes()
	if size == 0 {
		size = 1 << 30
	}
	v, ok := d.volumes[req.GetName()]
	if ok && v.Bytes != size {
		return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with %d bytes", v.Name, v.Bytes)
	}
	if !ok {
		if d.used()+size > d.opts.Capacity {
			return nil, status.Errorf(codes.ResourceExhausted, "%d bytes left", d.opts.Capacity-d.used())
		}
		d.nextID++
		v = &Volume{ID: fmt.Sprintf("vol-%d", d.nextID), Name: req.GetName(), Bytes: size,
			Parameters: req.GetParameters(), Secrets: req.GetSecrets(),
			Source: req.GetVolumeContentSource().GetVolume().GetVolumeId()}
		for _, t := range req.GetAccessibilityRequirements().GetRequisite() {
			v.Requisite = append(v.Requisite, t.GetSegments())
		}
		for _, t := range req.GetAccessibilityRequirements().GetPreferred() {
			v.Preferred = append(v.Preferred, t.GetSegments())
		}
		switch {
		case len(v.Preferred) > 0:
			v.Topology = v.Preferred[0]
		case len(v.Requisite) > 0:
			v.Topology = v.Requisite[0]
		}
		d.volumes[v.Name] = v
	}
	out := &csi.Volume{VolumeId: v.ID, CapacityBytes: v.Bytes, VolumeContext: map[string]string{"name": v.Name}}
	if v.Topology != nil {
		out.AccessibleTopology = []*csi.Topology{{Segments: maps.Clone(v.Topology)}}
	}
	return &csi.CreateVolumeResponse{Volume: out}, nil
}

func (d *Driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, v := range d.volumes {
		if v.ID == req.GetVolumeId() {
			if len(d.published[v.ID]) > 0 {
				return nil, status.Errorf(codes.FailedPrecondition, "volume %s is published", v.ID)
			}
			delete(d.volumes, n)
		}
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *Driver) find(id string) *Volume {
	for _, v := range d.volumes {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func (d *Driver) ControllerPublishVolume(_ context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.find(req.GetVolumeId()) == nil {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	if req.GetNodeId() == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "node ID and capability are required")
	}
	if d.published[req.GetVolumeId()] == nil {
		d.published[req.GetVolumeId()] = map[string]string{}
	}
	d.published[req.GetVolumeId()][req.GetNodeId()] = fmt.Sprint(len(req.GetSecrets()))
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{"device": "/dev/fake-" + req.GetVolumeId()}}, nil
}

func (d *Driver) ControllerUnpublishVolume(_ context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.published[req.GetVolumeId()], req.GetNodeId())
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

func (d *Driver) GetCapacity(_ context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &csi.GetCapacityResponse{AvailableCapacity: d.opts.Capacity - d.used()}
	if d.opts.MaxVolumeSize > 0 {
		resp.MaximumVolumeSize = wrapperspb.Int64(d.opts.MaxVolumeSize)
	}
	return resp, nil
}
