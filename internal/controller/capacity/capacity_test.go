package capacity

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
)

const driver = "fake.csi.volplane.io"

type harness struct {
	t   *testing.T
	cs  *fake.Clientset
	drv *csitest.Driver
	cli *client.Client
	c   *Controller
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	h := &harness{t: t, cs: fake.NewClientset(objs...), drv: csitest.Serve(t, csitest.Options{Name: driver, Capacity: 10 << 30, MaxVolumeSize: 4 << 30})}
	var err error
	if h.cli, err = client.New(client.Config{Endpoint: h.drv.Endpoint}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cli.Close() })
	h.start()
	return h
}

func (h *harness) start() {
	caps, err := h.cli.Capabilities(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(h.cs, 0)
	if h.c, err = New(Config{Driver: driver, CSI: h.cli, Capabilities: caps, Client: h.cs, Informers: f}); err != nil {
		h.t.Fatal(err)
	}
	stop := make(chan struct{})
	h.t.Cleanup(func() { close(stop) })
	f.Start(stop)
	f.WaitForCacheSync(stop)
}

func (h *harness) sync() map[string]storagev1.CSIStorageCapacity {
	h.t.Helper()
	if err := h.c.sync(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	l, _ := h.cs.StorageV1().CSIStorageCapacities("kube-system").List(context.Background(), metav1.ListOptions{})
	out := map[string]storagev1.CSIStorageCapacity{}
	for _, o := range l.Items {
		out[o.StorageClassName+"/"+o.NodeTopology.MatchLabels[csitest.TopologyKey]] = o
	}
	return out
}

func nodeObjs(name, zone string) []runtime.Object {
	return []runtime.Object{
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{csitest.TopologyKey: zone}}},
		&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: driver, NodeID: name, TopologyKeys: []string{csitest.TopologyKey}}}}},
	}
}

func TestPublishAndKeepCurrent(t *testing.T) {
	objs := append(nodeObjs("n1", "a"), nodeObjs("n2", "b")...)
	objs = append(objs,
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver, UID: "driver-uid"}},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: driver},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Provisioner: "someone.else"})
	h := newHarness(t, objs...)
	got := h.sync()
	if len(got) != 2 {
		t.Fatalf("objects %v, want fast/a and fast/b", got)
	}
	for _, k := range []string{"fast/a", "fast/b"} {
		o, ok := got[k]
		if !ok {
			t.Fatalf("no object for %s", k)
		}
		if o.Capacity.Value() != 10<<30 || o.MaximumVolumeSize.Value() != 4<<30 {
			t.Errorf("%s: capacity %v max %v", k, o.Capacity, o.MaximumVolumeSize)
		}
		if len(o.OwnerReferences) != 1 || o.OwnerReferences[0].Kind != "CSIDriver" || o.OwnerReferences[0].UID != "driver-uid" {
			t.Errorf("%s: owners %v", k, o.OwnerReferences)
		}
		if o.Labels[LabelDriver] != driver || o.Labels[LabelManagedBy] != ManagedBy {
			t.Errorf("%s: labels %v", k, o.Labels)
		}
	}

	// A volume takes space: the objects follow.
	if _, err := h.cli.CreateVolume(context.Background(), &client.CreateVolumeRequest{Name: "v", RequiredBytes: 3 << 30,
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}}); err != nil {
		t.Fatal(err)
	}
	h.start()
	if got := h.sync(); got["fast/a"].Capacity.Value() != 7<<30 || len(got) != 2 {
		t.Errorf("after a volume: %v", got["fast/a"].Capacity)
	}

	// The class goes: its objects go.
	h.cs.StorageV1().StorageClasses().Delete(context.Background(), "fast", metav1.DeleteOptions{})
	h.start()
	if got := h.sync(); len(got) != 0 {
		t.Errorf("objects left after the class went: %v", got)
	}
}

func TestNoCSIDriverNoObjects(t *testing.T) {
	h := newHarness(t, append(nodeObjs("n1", "a"),
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: driver})...)
	if got := h.sync(); len(got) != 0 {
		t.Errorf("objects without a CSIDriver: %v", got)
	}
}

func TestSyncTwiceBeforeCacheSeesCreate(t *testing.T) {
	h := newHarness(t, append(nodeObjs("n1", "a"),
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver}},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: driver})...)
	h.sync()
	if got := h.sync(); len(got) != 1 {
		t.Errorf("%d objects after two syncs, want 1", len(got))
	}
}
