package protection

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func vac(name string, deletingToo bool, finalizers ...string) *storagev1.VolumeAttributesClass {
	c := &storagev1.VolumeAttributesClass{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: finalizers}, DriverName: "d"}
	if deletingToo {
		c.DeletionTimestamp = deleted
	}
	return c
}

// newVACTest builds volumeattributesclass-protection over a fake API
// holding objs, its informer caches filled with them.
func newVACTest(t *testing.T, objs ...runtime.Object) (*VACController, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := NewVAC(Config{}, client, factory)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *storagev1.VolumeAttributesClass:
			err = factory.Storage().V1().VolumeAttributesClasses().Informer().GetIndexer().Add(o)
		case *v1.PersistentVolumeClaim:
			err = c.claims.Add(o)
		case *v1.PersistentVolume:
			err = c.volumes.Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c, client
}

func TestVACProtection(t *testing.T) {
	specClaim := claim("spec", func(c *v1.PersistentVolumeClaim) { c.Spec.VolumeAttributesClassName = ptr.To("gold") })
	statusClaim := claim("status", func(c *v1.PersistentVolumeClaim) { c.Status.CurrentVolumeAttributesClassName = ptr.To("gold") })
	targetClaim := claim("target", func(c *v1.PersistentVolumeClaim) {
		c.Spec.VolumeAttributesClassName = ptr.To("silver")
		c.Status.ModifyVolumeStatus = &v1.ModifyVolumeStatus{TargetVolumeAttributesClassName: "gold", Status: v1.PersistentVolumeClaimModifyVolumeInProgress}
	})
	otherClaim := claim("other", func(c *v1.PersistentVolumeClaim) { c.Spec.VolumeAttributesClassName = ptr.To("silver") })
	volume := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1"}, Spec: v1.PersistentVolumeSpec{VolumeAttributesClassName: ptr.To("gold")}}
	for _, tc := range []struct {
		name  string
		class *storagev1.VolumeAttributesClass
		users []runtime.Object
		want  []string // finalizers after the sync
	}{
		{"finalizer added to a class that lacks it", vac("gold", false), nil, []string{VACFinalizer}},
		{"unused deleted class released", vac("gold", true, VACFinalizer), []runtime.Object{otherClaim}, nil},
		{"kept while a claim asks for it", vac("gold", true, VACFinalizer), []runtime.Object{specClaim}, []string{VACFinalizer}},
		{"kept while a claim's volume has it", vac("gold", true, VACFinalizer), []runtime.Object{statusClaim}, []string{VACFinalizer}},
		{"kept while a modification targets it", vac("gold", true, VACFinalizer), []runtime.Object{targetClaim}, []string{VACFinalizer}},
		{"kept while a volume has it", vac("gold", true, VACFinalizer), []runtime.Object{volume}, []string{VACFinalizer}},
		{"other finalizers stay", vac("gold", true, "example.com/x", VACFinalizer), nil, []string{"example.com/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, client := newVACTest(t, append([]runtime.Object{tc.class}, tc.users...)...)
			if err := c.sync(testCtx(), "gold"); err != nil {
				t.Fatal(err)
			}
			got, err := client.StorageV1().VolumeAttributesClasses().Get(testCtx(), "gold", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Finalizers, tc.want) {
				t.Errorf("finalizers %v, want %v", got.Finalizers, tc.want)
			}
		})
	}
}

// TestVACQueuedWhenReleased: a claim or volume that stops naming a class
// (updated or deleted) queues it, so a Terminating class goes without
// waiting for anything else.
func TestVACQueuedWhenReleased(t *testing.T) {
	c, _ := newVACTest(t)
	old := claim("c", func(c *v1.PersistentVolumeClaim) {
		c.Spec.VolumeAttributesClassName = ptr.To("gold")
		c.Status.CurrentVolumeAttributesClassName = ptr.To("silver")
	})
	cur := old.DeepCopy()
	cur.Spec.VolumeAttributesClassName = ptr.To("silver")
	c.released(refsOf(old), refsOf(cur))
	if c.queue.Len() != 1 {
		t.Fatalf("queued %d classes, want gold only", c.queue.Len())
	}
	if k, _ := c.queue.Get(); k != "gold" {
		t.Errorf("queued %q, want gold", k)
	}
}
