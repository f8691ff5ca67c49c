package pluginwatcher

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	regapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"volplane/internal/node/csidrivers"
)

const (
	testNode    = "node-a"
	testNodeUID = "uid-node-a"
)

// fakeCSI is a CSI Node service answering NodeGetInfo on a real socket.
type fakeCSI struct {
	csi.UnimplementedNodeServer
	mu   sync.Mutex
	info *csi.NodeGetInfoResponse
}

func (f *fakeCSI) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(f.info).(*csi.NodeGetInfoResponse), nil
}

// setMaxVolumes changes what NodeGetInfo reports as max_volumes_per_node.
func (f *fakeCSI) setMaxVolumes(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info.MaxVolumesPerNode = n
}

// serveCSI serves a driver's Node service at path until the test ends.
func serveCSI(t *testing.T, path, nodeID string, maxVolumes int64, topology map[string]string) *fakeCSI {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	resp := &csi.NodeGetInfoResponse{NodeId: nodeID, MaxVolumesPerNode: maxVolumes}
	if topology != nil {
		resp.AccessibleTopology = &csi.Topology{Segments: topology}
	}
	f := &fakeCSI{info: resp}
	csi.RegisterNodeServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return f
}

// fakeRegistrar serves the plugin-registration API at a socket and
// records what the watcher told it.
type fakeRegistrar struct {
	regapi.UnimplementedRegistrationServer
	info *regapi.PluginInfo

	path string
	srv  *grpc.Server
	l    *net.UnixListener

	mu       sync.Mutex
	statuses []*regapi.RegistrationStatus
	notified chan struct{}
}

func (f *fakeRegistrar) GetInfo(context.Context, *regapi.InfoRequest) (*regapi.PluginInfo, error) {
	return f.info, nil
}

func (f *fakeRegistrar) NotifyRegistrationStatus(_ context.Context, s *regapi.RegistrationStatus) (*regapi.RegistrationStatusResponse, error) {
	f.mu.Lock()
	f.statuses = append(f.statuses, s)
	f.mu.Unlock()
	select {
	case f.notified <- struct{}{}:
	default:
	}
	return &regapi.RegistrationStatusResponse{}, nil
}

// last is the last status the watcher sent, nil when none.
func (f *fakeRegistrar) last() *regapi.RegistrationStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.statuses) == 0 {
		return nil
	}
	return f.statuses[len(f.statuses)-1]
}

// serveRegistrar serves info at path until the test ends or stop.
func serveRegistrar(t *testing.T, path string, info *regapi.PluginInfo) *fakeRegistrar {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistrar{info: info, path: path, srv: grpc.NewServer(), l: l.(*net.UnixListener), notified: make(chan struct{}, 1)}
	regapi.RegisterRegistrationServer(f.srv, f)
	go func() { _ = f.srv.Serve(l) }()
	t.Cleanup(f.srv.Stop)
	return f
}

// die stops answering and leaves the socket file, as a killed process.
func (f *fakeRegistrar) die() {
	f.l.SetUnlinkOnClose(false)
	f.srv.Stop()
}

// remove stops answering and removes the socket, as a clean stop.
func (f *fakeRegistrar) remove(t *testing.T) {
	f.srv.Stop()
	if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// testEnv is a watcher over a fake API with a Node, in a temp dir.
type testEnv struct {
	dir     string // registration dir
	drvDir  string // where drivers' CSI sockets live
	client  *fake.Clientset
	drivers *csidrivers.Registry
	w       *Watcher
	csi     map[string]*fakeCSI // the drivers' Node services by name
}

func newEnv(t *testing.T, objs ...runtime.Object) *testEnv {
	t.Helper()
	// Short paths: a unix socket path has at most 107 bytes.
	base, err := os.MkdirTemp("", "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: testNodeUID, Labels: map[string]string{"keep": "me"}}}
	e := &testEnv{
		dir:     filepath.Join(base, "plugins_registry"),
		drvDir:  filepath.Join(base, "plugins"),
		client:  fake.NewClientset(append([]runtime.Object{node}, objs...)...),
		drivers: &csidrivers.Registry{},
		csi:     map[string]*fakeCSI{},
	}
	if err := os.MkdirAll(e.drvDir, 0o750); err != nil {
		t.Fatal(err)
	}
	e.w, err = New(Config{Dir: e.dir, NodeName: testNode, Client: e.client, Drivers: e.drivers,
		RescanPeriod: 100 * time.Millisecond, CallTimeout: 5 * time.Second, CSITimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs the watcher until the test ends.
func (e *testEnv) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// driver starts a CSI driver and its registrar: the driver's socket in
// drvDir, the registration socket <name>-reg.sock in the registration dir.
func (e *testEnv) driver(t *testing.T, name, nodeID string, maxVolumes int64, topology map[string]string) *fakeRegistrar {
	t.Helper()
	sock := filepath.Join(e.drvDir, name+".sock")
	e.csi[name] = serveCSI(t, sock, nodeID, maxVolumes, topology)
	if err := os.MkdirAll(e.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return serveRegistrar(t, filepath.Join(e.dir, name+"-reg.sock"),
		&regapi.PluginInfo{Type: regapi.CSIPlugin, Name: name, Endpoint: sock, SupportedVersions: []string{"1.0.0"}})
}

func (e *testEnv) node(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := e.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *testEnv) csiNode(t *testing.T) *storagev1.CSINode {
	t.Helper()
	c, err := e.client.StorageV1().CSINodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually waits for cond, failing the test after a minute: a bound
// against a hang, not a speed check.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
