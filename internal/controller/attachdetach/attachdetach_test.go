package attachdetach

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/kube"
)

const driver = "fake.csi.volplane.io"

var volName = kube.UniqueVolumeName(driver, "h1")

type harness struct {
	t   *testing.T
	cs  *fake.Clientset
	rec *record.FakeRecorder
	c   *Controller
}

func newHarness(t *testing.T, cfg Config, objs ...runtime.Object) *harness {
	h := &harness{t: t, cs: fake.NewClientset(objs...)}
	h.start(cfg)
	return h
}

// start builds a controller over the current API objects, as a restart.
func (h *harness) start(cfg Config) {
	h.t.Helper()
	f := informers.NewSharedInformerFactory(h.cs, 0)
	h.rec = record.NewFakeRecorder(100)
	var err error
	if h.c, err = New(cfg, h.cs, f, h.rec); err != nil {
		h.t.Fatal(err)
	}
	stop := make(chan struct{})
	h.t.Cleanup(func() { close(stop) })
	f.Start(stop)
	f.WaitForCacheSync(stop)
}

func (h *harness) reconcile() {
	h.t.Helper()
	if err := h.c.reconcile(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) attachments() []storagev1.VolumeAttachment {
	l, _ := h.cs.StorageV1().VolumeAttachments().List(context.Background(), metav1.ListOptions{})
	return l.Items
}

func (h *harness) node(name string) *v1.Node {
	n, _ := h.cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	return n
}

func (h *harness) events() string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

func node(name string, ready bool, inUse ...v1.UniqueVolumeName) *v1.Node {
	st := v1.ConditionFalse
	if ready {
		st = v1.ConditionTrue
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnControllerManaged: "true"}},
		Status: v1.NodeStatus{VolumesInUse: inUse,
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: st}}},
	}
}

func pod(name, node string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{NodeName: node, Volumes: []v1.Volume{{Name: "data",
			VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c1"}}}}},
		Status: v1.PodStatus{Phase: v1.PodRunning},
	}
}

// volume is a bound claim c1 and its CSI PV pv1 with the access modes.
func volume(modes ...v1.PersistentVolumeAccessMode) []runtime.Object {
	claim := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "c1", UID: "claim-uid"},
		Spec:       v1.PersistentVolumeClaimSpec{VolumeName: "pv1"},
		Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound},
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: v1.PersistentVolumeSpec{
			AccessModes:            modes,
			ClaimRef:               &v1.ObjectReference{Namespace: "default", Name: "c1", UID: "claim-uid"},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "h1"}},
		},
	}
	return []runtime.Object{claim, pv}
}

func attached(nodeName string) *storagev1.VolumeAttachment {
	return &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: kube.AttachmentName("h1", driver, nodeName), UID: types.UID("va-" + nodeName)},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: nodeName,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv1")}},
		Status: storagev1.VolumeAttachmentStatus{Attached: true},
	}
}

func objects(groups ...[]runtime.Object) []runtime.Object { return slices.Concat(groups...) }

func TestAttach(t *testing.T) {
	h := newHarness(t, Config{}, objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true), pod("p1", "n1")})...)
	h.reconcile()
	vas := h.attachments()
	wantName := kube.AttachmentName("h1", driver, "n1")
	if len(vas) != 1 || vas[0].Name != wantName || vas[0].Spec.Attacher != driver || *vas[0].Spec.Source.PersistentVolumeName != "pv1" || vas[0].Spec.NodeName != "n1" {
		t.Fatalf("attachments %+v, want one %s", vas, wantName)
	}
	if !strings.HasPrefix(wantName, "csi-") || len(wantName) != 4+64 {
		t.Errorf("name %s is not csi-<sha256>", wantName)
	}
	if got := h.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Errorf("volumesAttached %v before the attacher attached", got)
	}

	// The attacher marks it attached: the node reports it, the pod hears.
	va := vas[0]
	va.Status.Attached = true
	h.cs.StorageV1().VolumeAttachments().UpdateStatus(context.Background(), &va, metav1.UpdateOptions{})
	h.start(Config{})
	h.reconcile()
	if got := h.node("n1").Status.VolumesAttached; !slices.Equal(got, []v1.AttachedVolume{{Name: volName}}) {
		t.Errorf("volumesAttached %v, want %s", got, volName)
	}
	if ev := h.events(); ev != `Normal SuccessfulAttachVolume AttachVolume.Attach succeeded for volume "pv1" ` {
		t.Errorf("events %q", ev)
	}
	h.reconcile()
	if len(h.attachments()) != 1 || h.events() != "" {
		t.Error("a second pass created or reported again")
	}
}

func TestNothingToAttach(t *testing.T) {
	unmanaged := node("n2", true)
	unmanaged.Annotations = nil
	done := pod("done", "n1")
	done.Status.Phase = v1.PodSucceeded
	inline := pod("inline", "n1")
	inline.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: driver}}}}
	for name, objs := range map[string][]runtime.Object{
		"CSI inline volume": {node("n1", true), inline,
			&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(true)}}},
		"attachRequired false": objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true), pod("p1", "n1"),
			&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}}),
		"node not controller-managed": objects(volume(v1.ReadWriteOnce), []runtime.Object{unmanaged, pod("p1", "n2")}),
		"pod terminated":              objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true), done}),
		"pod not scheduled":           objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true), pod("p1", "")}),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{}, objs...)
			h.reconcile()
			if vas := h.attachments(); len(vas) != 0 {
				t.Errorf("attachments %v", vas)
			}
		})
	}
}

func TestDetachWaitsForVolumesInUse(t *testing.T) {
	n := node("n1", true, volName)
	n.Status.VolumesAttached = []v1.AttachedVolume{{Name: volName}}
	h := newHarness(t, Config{}, objects(volume(v1.ReadWriteOnce), []runtime.Object{n, attached("n1")})...)
	h.reconcile()
	if len(h.attachments()) != 1 {
		t.Fatal("detached a volume the node still has in use")
	}
	if got := h.node("n1").Status.VolumesAttached; len(got) != 1 {
		t.Errorf("volumesAttached %v changed while still in use", got)
	}

	// The node unmounted it.
	n = h.node("n1")
	n.Status.VolumesInUse = nil
	h.cs.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{})
	h.start(Config{})
	h.reconcile()
	if len(h.attachments()) != 0 {
		t.Error("not detached once the node no longer uses it")
	}
	if got := h.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Errorf("volumesAttached %v after detach", got)
	}
}

func TestForceDetach(t *testing.T) {
	tainted := node("n1", false, volName)
	tainted.Spec.Taints = []v1.Taint{{Key: v1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: v1.TaintEffectNoExecute}}
	for _, tc := range []struct {
		name     string
		node     *v1.Node
		cfg      Config
		wait     time.Duration
		detached bool
	}{
		{"out-of-service taint", tainted, Config{}, 0, true},
		{"unhealthy node, before the timeout", node("n1", false, volName), Config{}, 5 * time.Minute, false},
		{"unhealthy node, after the timeout", node("n1", false, volName), Config{}, 7 * time.Minute, true},
		{"unhealthy node, timeout disabled", node("n1", false, volName), Config{DisableForceDetachOnTimeout: true}, time.Hour, false},
		{"healthy node, long after", node("n1", true, volName), Config{}, time.Hour, false},
		{"custom timeout", node("n1", false, volName), Config{MaxWaitForUnmountDuration: time.Minute}, 2 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg, objects(volume(v1.ReadWriteOnce), []runtime.Object{tc.node, attached("n1")})...)
			t0 := time.Now()
			h.c.now = func() time.Time { return t0 }
			if tc.wait > 0 {
				h.reconcile()
				h.c.now = func() time.Time { return t0.Add(tc.wait) }
			}
			h.reconcile()
			if detached := len(h.attachments()) == 0; detached != tc.detached {
				t.Errorf("detached %v, want %v", detached, tc.detached)
			}
		})
	}
}

func TestMultiAttach(t *testing.T) {
	objs := objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true, volName), node("n2", true),
		pod("a", "n1"), pod("b", "n2"), attached("n1")})
	h := newHarness(t, Config{}, objs...)
	h.reconcile()
	if vas := h.attachments(); len(vas) != 1 {
		t.Errorf("%d attachments; a ReadWriteOnce volume went to a second node", len(vas))
	}
	want := `Warning FailedAttachVolume Multi-Attach error for volume "pv1" Volume is already used by pod(s) a`
	if ev := h.events(); !strings.Contains(ev, want) {
		t.Errorf("events %q, want %q", ev, want)
	}
	h.reconcile()
	if ev := h.events(); strings.Contains(ev, "Multi-Attach") {
		t.Error("Multi-Attach error reported twice")
	}

	// ReadWriteMany may go to both nodes.
	h2 := newHarness(t, Config{}, objects(volume(v1.ReadWriteMany), []runtime.Object{node("n1", true, volName), node("n2", true),
		pod("a", "n1"), pod("b", "n2"), attached("n1")})...)
	h2.reconcile()
	if vas := h2.attachments(); len(vas) != 2 {
		t.Errorf("%d attachments of a ReadWriteMany volume, want 2", len(vas))
	}
}

func TestAttachErrorReported(t *testing.T) {
	va := attached("n1")
	va.Status = storagev1.VolumeAttachmentStatus{AttachError: &storagev1.VolumeError{Time: metav1.Now(), Message: "rpc error: code = Internal desc = boom"}}
	h := newHarness(t, Config{}, objects(volume(v1.ReadWriteOnce), []runtime.Object{node("n1", true), pod("p1", "n1"), va})...)
	h.reconcile()
	want := `Warning FailedAttachVolume AttachVolume.Attach failed for volume "pv1" : rpc error: code = Internal desc = boom`
	if ev := h.events(); ev != want {
		t.Errorf("events %q, want %q", ev, want)
	}
}

// TestNoAttachEventWithoutAttach: upstream's reconciler reports
// SuccessfulAttachVolume from its attach operation only; a pod that
// arrives for a volume its node already has attached (a StatefulSet's pod
// recreated, or every pod after a restart of the controller) hears
// nothing. The node's status.volumesAttached is what the controller has
// seen attached, as upstream's actual state of the world is rebuilt from it.
func TestNoAttachEventWithoutAttach(t *testing.T) {
	n := node("n1", true, volName)
	n.Status.VolumesAttached = []v1.AttachedVolume{{Name: volName}}
	h := newHarness(t, Config{}, objects(volume(v1.ReadWriteOnce), []runtime.Object{n, pod("p2", "n1"), attached("n1")})...)
	h.reconcile()
	if ev := h.events(); ev != "" {
		t.Errorf("events %q for a volume attached before the pod came", ev)
	}
	if len(h.attachments()) != 1 {
		t.Errorf("attachments %v, want the one there", h.attachments())
	}
}

// TestReattachWhileInformerLags: the controller deleted an attachment
// and, before its informer delivered the deletion, a pod on the same node
// needs the volume again (a StatefulSet's pod recreated, a preemptor
// taking a ReadWriteOncePod claim). The attachment it deleted is
// detaching even though the informer still shows it attached: the node's
// status.volumesAttached does not list the volume again (the node would
// mount a volume whose ControllerUnpublish is under way), and no pod
// hears SuccessfulAttachVolume for it. Seen as a user: a preempting pod
// got SuccessfulAttachVolume twice for one attach.
func TestReattachWhileInformerLags(t *testing.T) {
	n := node("n1", true)
	n.Status.VolumesAttached = []v1.AttachedVolume{{Name: volName}}
	h := newHarness(t, Config{}, objects(volume(v1.ReadWriteOnce), []runtime.Object{n, attached("n1")})...)
	// The deletion is accepted but not seen yet: the API keeps the
	// object (here: as it was), as a lagging informer would show it.
	deletes := 0
	h.cs.PrependReactor("delete", "volumeattachments", func(k8stesting.Action) (bool, runtime.Object, error) {
		deletes++
		return true, nil, nil
	})
	h.reconcile()
	if deletes != 1 {
		t.Fatalf("%d deletes of the unneeded attachment, want 1", deletes)
	}
	waitFor(t, "the node's status patch", func() bool {
		got, _ := h.c.nodes.Get("n1")
		return got != nil && len(got.Status.VolumesAttached) == 0
	})
	if _, err := h.cs.CoreV1().Pods("default").Create(context.Background(), pod("p2", "n1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new pod", func() bool {
		_, err := h.c.pods.Pods("default").Get("p2")
		return err == nil
	})
	h.reconcile()
	if got := h.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Errorf("volumesAttached %v while the attachment is being deleted", got)
	}
	if ev := h.events(); ev != "" {
		t.Errorf("events %q for an attachment being deleted", ev)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
