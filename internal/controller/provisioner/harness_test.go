package provisioner

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
)

const driver = "fake.csi.volplane.io"

type harness struct {
	t   *testing.T
	cs  *fake.Clientset
	drv *csitest.Driver
	cli *client.Client
	rec *record.FakeRecorder
	c   *Controller
}

func newHarness(t *testing.T, opts csitest.Options, objs ...runtime.Object) *harness {
	t.Helper()
	opts.Name = driver
	drv := csitest.Serve(t, opts)
	h := newHarnessOn(t, drv.Endpoint, objs...)
	h.drv = drv
	return h
}

// newHarnessOn is a harness on the driver at endpoint, named driver.
func newHarnessOn(t *testing.T, endpoint string, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, cs: fake.NewClientset(objs...)}
	var err error
	h.cli, err = client.New(client.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cli.Close() })
	h.start(Config{})
	return h
}

// start builds a controller on the harness's API and driver, as a
// (re)started process would, and syncs its caches.
func (h *harness) start(cfg Config) {
	h.t.Helper()
	caps, err := h.cli.Capabilities(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(h.cs, 0)
	h.rec = record.NewFakeRecorder(100)
	cfg.Driver, cfg.CSI, cfg.Capabilities = driver, h.cli, caps
	cfg.Client, cfg.Informers, cfg.Recorder = h.cs, f, h.rec
	cfg.PVCreateRetries, cfg.PVCreateRetryInterval = 2, time.Millisecond
	h.c, err = New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	stop := make(chan struct{})
	h.t.Cleanup(func() { close(stop) })
	f.Start(stop)
	f.WaitForCacheSync(stop)
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (h *harness) hasEvent(prefix string) bool {
	for _, e := range h.events() {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func (h *harness) volume(name string) *v1.PersistentVolume {
	pv, err := h.cs.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return pv
}

func class(name string, mode storagev1.VolumeBindingMode, params map[string]string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       driver,
		Parameters:        params,
		ReclaimPolicy:     ptr.To(v1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: &mode,
	}
}

func claim(name, className string, ann map[string]string) *v1.PersistentVolumeClaim {
	a := map[string]string{storagehelpers.AnnStorageProvisioner: driver, storagehelpers.AnnBetaStorageProvisioner: driver}
	for k, v := range ann {
		a[k] = v
	}
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), Annotations: a},
		Spec: v1.PersistentVolumeClaimSpec{
			StorageClassName: &className,
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			VolumeMode:       ptr.To(v1.PersistentVolumeFilesystem),
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

func node(name, zone string) (*v1.Node, *storagev1.CSINode) {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{csitest.TopologyKey: zone}}},
		&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: driver, NodeID: name + "-id", TopologyKeys: []string{csitest.TopologyKey}}}}}
}
