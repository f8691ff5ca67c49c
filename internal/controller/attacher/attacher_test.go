package attacher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
	"volplane/internal/csi/kube"
)

const driver = "fake.csi.volplane.io"

type harness struct {
	t      *testing.T
	cs     *fake.Clientset
	drv    *csitest.Driver
	cli    *client.Client
	c      *Controller
	handle string
}

// newHarness serves a fake driver holding one volume, and a PV for it,
// a CSINode for node n1 and a VolumeAttachment of the PV to n1.
func newHarness(t *testing.T, opts csitest.Options, objs ...runtime.Object) *harness {
	t.Helper()
	opts.Name = driver
	h := &harness{t: t, drv: csitest.Serve(t, opts)}
	var err error
	if h.cli, err = client.New(client.Config{Endpoint: h.drv.Endpoint}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cli.Close() })
	v, err := h.cli.CreateVolume(context.Background(), &client.CreateVolumeRequest{Name: "pv1", RequiredBytes: 1 << 30,
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}})
	if err != nil {
		t.Fatal(err)
	}
	h.handle = v.ID
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: v1.PersistentVolumeSpec{
			AccessModes:            []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: v.ID}},
		},
	}
	csiNode := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: storagev1.CSINodeSpec{
		Drivers: []storagev1.CSINodeDriver{{Name: driver, NodeID: "n1-id"}}}}
	h.cs = fake.NewClientset(append([]runtime.Object{pv, csiNode, attachment()}, objs...)...)
	h.start()
	return h
}

func attachment() *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va1"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "n1",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv1")}},
	}
}

func (h *harness) start() {
	h.t.Helper()
	caps, err := h.cli.Capabilities(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(h.cs, 0)
	h.c, err = New(Config{Driver: driver, CSI: h.cli, Capabilities: caps, Client: h.cs, Informers: f})
	if err != nil {
		h.t.Fatal(err)
	}
	stop := make(chan struct{})
	h.t.Cleanup(func() { close(stop) })
	f.Start(stop)
	f.WaitForCacheSync(stop)
}

func (h *harness) va() *storagev1.VolumeAttachment {
	va, err := h.cs.StorageV1().VolumeAttachments().Get(context.Background(), "va1", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return va
}

func (h *harness) pv() *v1.PersistentVolume {
	pv, err := h.cs.CoreV1().PersistentVolumes().Get(context.Background(), "pv1", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return pv
}

func TestAttachAndDetach(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	ctx := context.Background()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	va := h.va()
	fin := "external-attacher/fake-csi-volplane-io"
	if !va.Status.Attached || va.Status.AttachmentMetadata["device"] != "/dev/fake-"+h.handle || va.Status.AttachError != nil {
		t.Errorf("status %+v", va.Status)
	}
	if !slices.Contains(va.Finalizers, fin) || va.Annotations[kube.AnnNodeID] != "n1-id" {
		t.Errorf("finalizers %v annotations %v", va.Finalizers, va.Annotations)
	}
	if !slices.Contains(h.pv().Finalizers, fin) {
		t.Errorf("PV finalizers %v", h.pv().Finalizers)
	}
	if got := h.drv.Published(h.handle); !slices.Equal(got, []string{"n1-id"}) {
		t.Errorf("published to %v", got)
	}

	// Deletion: the CSINode is gone by now; the recorded node ID serves.
	h.cs.StorageV1().CSINodes().Delete(ctx, "n1", metav1.DeleteOptions{})
	now := metav1.Now()
	va.DeletionTimestamp = &now
	h.cs.StorageV1().VolumeAttachments().Update(ctx, va, metav1.UpdateOptions{})
	h.start()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	if got := h.drv.Published(h.handle); len(got) != 0 {
		t.Errorf("still published to %v", got)
	}
	va = h.va()
	if va.Status.Attached || slices.Contains(va.Finalizers, fin) {
		t.Errorf("after detach: status %+v finalizers %v", va.Status, va.Finalizers)
	}
	// The PV loses its finalizer once no attachment names it (the fake
	// API keeps a deleted object without finalizers; the real one does
	// not).
	h.cs.StorageV1().VolumeAttachments().Delete(ctx, "va1", metav1.DeleteOptions{})
	h.start()
	if err := h.c.syncVolume(ctx, "pv1"); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.pv().Finalizers, fin) {
		t.Error("PV finalizer left after the last VolumeAttachment went")
	}
}

// TestLegacyFinalizerReleased: an attachment and a volume an older
// volplane finalized under the finalizer's former name
// (external-attacher/<driver with dots>) are detached and released.
func TestLegacyFinalizerReleased(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	ctx := context.Background()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	legacy := "external-attacher/" + driver
	rename := func(fs []string) []string {
		return slices.DeleteFunc(append(fs, legacy), func(f string) bool { return f == "external-attacher/fake-csi-volplane-io" })
	}
	pv := h.pv()
	pv.Finalizers = rename(pv.Finalizers)
	h.cs.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	va := h.va()
	va.Finalizers = rename(va.Finalizers)
	now := metav1.Now()
	va.DeletionTimestamp = &now
	h.cs.StorageV1().VolumeAttachments().Update(ctx, va, metav1.UpdateOptions{})
	h.start()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	if got := h.drv.Published(h.handle); len(got) != 0 {
		t.Errorf("still published to %v", got)
	}
	if va := h.va(); len(va.Finalizers) != 0 {
		t.Errorf("attachment finalizers %v after detach", va.Finalizers)
	}
	h.cs.StorageV1().VolumeAttachments().Delete(ctx, "va1", metav1.DeleteOptions{})
	h.start()
	if err := h.c.syncVolume(ctx, "pv1"); err != nil {
		t.Fatal(err)
	}
	if fs := h.pv().Finalizers; slices.Contains(fs, legacy) {
		t.Errorf("PV finalizers %v", fs)
	}
}

func TestAttachErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(h *harness)
		errMsg string
		// code is the attachError's errorCode, -1 for none.
		code int32
	}{
		{"driver fails", func(h *harness) { h.drv.Fail("ControllerPublishVolume", codes.Internal, "boom") },
			"rpc error: code = Internal desc = boom", int32(codes.Internal)},
		{"node out of attachment slots", func(h *harness) { h.drv.Fail("ControllerPublishVolume", codes.ResourceExhausted, "full") },
			"rpc error: code = ResourceExhausted desc = full", int32(codes.ResourceExhausted)},
		{"node without the driver", func(h *harness) {
			h.cs.StorageV1().CSINodes().Delete(context.Background(), "n1", metav1.DeleteOptions{})
			h.start()
		}, "CSINode n1 does not contain driver " + driver, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, csitest.Options{})
			tc.setup(h)
			if err := h.c.syncAttachment(context.Background(), "va1"); err == nil {
				t.Fatal("no error")
			}
			va := h.va()
			if va.Status.Attached || va.Status.AttachError == nil || va.Status.AttachError.Message != tc.errMsg {
				t.Errorf("status %+v, want attachError %q", va.Status, tc.errMsg)
			}
			if got := va.Status.AttachError.ErrorCode; (tc.code < 0) != (got == nil) || got != nil && *got != tc.code {
				t.Errorf("attachError errorCode %v, want %d", got, tc.code)
			}
			if len(h.drv.Published(h.handle)) != 0 {
				t.Error("published")
			}
		})
	}
}

func TestDetachErrorKeepsFinalizer(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	ctx := context.Background()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	va := h.va()
	now := metav1.Now()
	va.DeletionTimestamp = &now
	h.cs.StorageV1().VolumeAttachments().Update(ctx, va, metav1.UpdateOptions{})
	h.drv.Fail("ControllerUnpublishVolume", codes.Unavailable, "down")
	h.start()
	if err := h.c.syncAttachment(ctx, "va1"); err == nil {
		t.Fatal("no error")
	}
	va = h.va()
	if va.Status.DetachError == nil || !strings.Contains(va.Status.DetachError.Message, "Unavailable") || !va.Status.Attached {
		t.Errorf("status %+v", va.Status)
	}
	if !slices.Contains(va.Finalizers, kube.AttacherFinalizer(driver)) {
		t.Error("finalizer removed after a failed detach")
	}
}

// TestCrashBetweenPublishAndStatus: the attacher dies after
// ControllerPublish, while writing the status; after a restart the
// volume is attached once.
func TestCrashBetweenPublishAndStatus(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	ctx, crash := context.WithCancel(context.Background())
	h.cs.PrependReactor("update", "volumeattachments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		crash()
		return true, nil, errors.New("connection reset")
	})
	if err := h.c.syncAttachment(ctx, "va1"); err == nil {
		t.Fatal("no error from the crashed sync")
	}
	h.cs.ReactionChain = h.cs.ReactionChain[1:]
	h.start()
	if err := h.c.syncAttachment(context.Background(), "va1"); err != nil {
		t.Fatal(err)
	}
	if got := h.drv.Published(h.handle); !slices.Equal(got, []string{"n1-id"}) {
		t.Errorf("published to %v", got)
	}
	if !h.va().Status.Attached {
		t.Error("not attached after restart")
	}
}

func TestDriverWithoutPublish(t *testing.T) {
	h := newHarness(t, csitest.Options{NoPublish: true})
	if err := h.c.syncAttachment(context.Background(), "va1"); err != nil {
		t.Fatal(err)
	}
	if !h.va().Status.Attached || h.drv.Calls("ControllerPublishVolume") != 0 {
		t.Errorf("attached %v, %d publish calls", h.va().Status.Attached, h.drv.Calls("ControllerPublishVolume"))
	}
}

func TestOtherDriverIgnored(t *testing.T) {
	other := attachment()
	other.Name, other.Spec.Attacher = "va2", "other.driver"
	h := newHarness(t, csitest.Options{}, other)
	if err := h.c.syncAttachment(context.Background(), "va2"); err != nil {
		t.Fatal(err)
	}
	va, _ := h.cs.StorageV1().VolumeAttachments().Get(context.Background(), "va2", metav1.GetOptions{})
	if va.Status.Attached || len(va.Finalizers) != 0 {
		t.Errorf("another driver's attachment touched: %+v", va)
	}
}

func TestVolumeFinalizerStaysWhileAttached(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	ctx := context.Background()
	if err := h.c.syncAttachment(ctx, "va1"); err != nil {
		t.Fatal(err)
	}
	h.start()
	if err := h.c.syncVolume(ctx, "pv1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.pv().Finalizers, kube.AttacherFinalizer(driver)) {
		t.Error("PV finalizer removed while a VolumeAttachment names the PV")
	}
}
