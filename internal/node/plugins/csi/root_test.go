package csi

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/kube"
	"volplane/internal/csidriver"
	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/plugins"
)

// TestRootBuiltInDriver stages and publishes a real volume of the
// built-in driver (in process, on a socket in the test's directory, its
// pool an image there) through the plugin, as the volume manager calls
// it, twice (a restart), writes through the pod's mount, and tears it
// all down. Whatever a failure leaves mounted under the test's directory
// is unmounted at the end.
func TestRootBuiltInDriver(t *testing.T) {
	b := startBuiltIn(t)
	ctx, d, id, v, root := context.Background(), b.d, b.id, b.pv, b.root
	p, err := New(Config{Drivers: b.reg})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ops := hostops.New()
	if err := p.Init(&plugins.Host{RootDir: root, NodeName: nodeName, Ops: ops, Client: fake.NewClientset(b.objs...),
		Recorder: record.NewFakeRecorder(10), Log: slog.Default(), Remount: func(types.UID) {}}); err != nil {
		t.Fatal(err)
	}

	s := &plugins.Spec{Name: "data", PV: v, Volume: &corev1.Volume{Name: "data"}}
	gm, err := p.DeviceMountPath(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := plugins.PodVolumeDir(root, "uid-1", PluginName, v.Name)
	target := p.ContentDir(dir)
	gid := int64(4321)
	for round := range 2 { // the second round is what a restart does
		if err := os.MkdirAll(gm, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := p.MountDevice(ctx, s, gm); err != nil {
			t.Fatalf("round %d: MountDevice: %v", round, err)
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := p.SetUp(ctx, plugins.SetUpArgs{Spec: s, Pod: testPod(), Dir: dir, DeviceMountPath: gm, FSGroup: &gid}); err != nil {
			t.Fatalf("round %d: SetUp: %v", round, err)
		}
	}
	for _, path := range []string{gm, target} {
		if n := hostopstest.MountCount(t, path); n != 1 {
			t.Errorf("%d mounts at %s, want 1", n, path)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "hello"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Pool().DirPath(id), "hello")); err != nil || string(b) != "data" {
		t.Errorf("file not in the pool's volume: %q, %v", b, err)
	}
	if fi, err := os.Stat(target); err != nil || int64(fi.Sys().(*syscall.Stat_t).Gid) != gid || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("fsGroup not applied to %s: %v, %v", target, fi.Mode(), err)
	}

	if err := p.TearDown(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod volume dir left: %v", err)
	}
	if err := p.UnmountDevice(ctx, gm); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(gm)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("global dir left: %v", err)
	}
	if mps, err := plugins.MountsUnder(ops, root); err != nil || len(mps) != 0 {
		t.Errorf("mounts left under the root: %v, %v", mps, err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Pool().DirPath(id), "hello")); err != nil || string(b) != "data" {
		t.Errorf("data gone after teardown: %q, %v", b, err)
	}
	b.deleteVolume(t)
}

// builtIn is the built-in driver in process, serving on a socket under
// the test's directory with its pool an image there, and one volume of
// it: created, published to nodeName, its PV, VolumeAttachment and
// CSIDriver objects ready for a fake clientset.
type builtIn struct {
	d        *csidriver.Driver
	endpoint string
	reg      *csidrivers.Registry
	root     string // the node's root dir
	id       string
	pv       *corev1.PersistentVolume
	objs     []runtime.Object
}

func startBuiltIn(t *testing.T) *builtIn { return startBuiltInMode(t, false) }

// startBuiltInMode is startBuiltIn with a raw block volume when block.
func startBuiltInMode(t *testing.T, block bool) *builtIn {
	t.Helper()
	hostopstest.RequireRoot(t)
	base := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	ctx, cancel := context.WithCancel(context.Background())
	b := &builtIn{root: filepath.Join(base, "kubelet"), reg: &csidrivers.Registry{}}
	d, err := csidriver.New(ctx, csidriver.Config{NodeID: nodeName,
		Pool: pool.Config{Dir: filepath.Join(base, "pool"), ImageSize: 256 << 20}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	b.d = d
	b.endpoint = "unix://" + filepath.Join(base, "plugins", csidriver.DriverName, "csi.sock")
	l, err := csidriver.Listen(b.endpoint)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeOn(ctx, l) }()
	t.Cleanup(func() {
		// The volumes' mounts go before the pool's image.
		hostopstest.Teardown(t, b.root)
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := d.Pool().Unmount(context.Background()); err != nil {
			t.Errorf("unmount pool: %v", err)
		}
	})
	b.reg.Add(csidrivers.Driver{Name: csidriver.DriverName, Endpoint: b.endpoint})

	snw := &csipb.VolumeCapability{AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}}}
	if block {
		snw.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
	}
	created, err := d.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-root", VolumeCapabilities: []*csipb.VolumeCapability{snw},
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	b.id = created.GetVolume().GetVolumeId()
	published, err := d.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: b.id, NodeId: nodeName, VolumeCapability: snw})
	if err != nil {
		t.Fatal(err)
	}
	b.pv = &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-root"}, Spec: corev1.PersistentVolumeSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		VolumeMode:  ptr.To(map[bool]corev1.PersistentVolumeMode{true: corev1.PersistentVolumeBlock, false: corev1.PersistentVolumeFilesystem}[block]),
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
			Driver: csidriver.DriverName, VolumeHandle: b.id, VolumeAttributes: created.GetVolume().GetVolumeContext()}},
	}}
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: kube.AttachmentName(b.id, csidriver.DriverName, nodeName)},
		Status: storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: published.GetPublishContext()}}
	obj := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: csidriver.DriverName}, Spec: storagev1.CSIDriverSpec{
		AttachRequired: ptr.To(true), PodInfoOnMount: ptr.To(true), FSGroupPolicy: ptr.To(storagev1.FileFSGroupPolicy)}}
	b.objs = []runtime.Object{b.pv, va, obj}
	return b
}

// deleteVolume detaches and deletes the volume, which the driver refuses
// while it is staged or published.
func (b *builtIn) deleteVolume(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.d.ControllerUnpublishVolume(ctx, &csipb.ControllerUnpublishVolumeRequest{VolumeId: b.id, NodeId: nodeName}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.d.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: b.id}); err != nil {
		t.Fatal(err)
	}
}
