package volumebinding

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"
)

// pluginFixture is the plugin on a fake API with its informers running.
type pluginFixture struct {
	t      *testing.T
	ctx    context.Context
	client *fake.Clientset
	p      *Plugin
}

func newFixture(t *testing.T, args Args, objs ...runtime.Object) *pluginFixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	// The fake keeps resource versions as given; the API server's grow
	// with every write, and PreBind tells its own writes by them.
	var rv atomic.Int64
	rv.Store(100)
	client.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.UpdateAction).GetObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return false, nil, err
		}
		m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		return false, nil, nil
	})
	f := informers.NewSharedInformerFactory(client, 0)
	t.Cleanup(f.Shutdown) // after cancel: cleanups run last first
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p, err := newPlugin(args.withDefaults(), client, f)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	return &pluginFixture{t: t, ctx: ctx, client: client, p: p}
}

func podWith(name string, claims ...string) *v1.Pod {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	for _, c := range claims {
		pod.Spec.Volumes = append(pod.Spec.Volumes, v1.Volume{Name: c, VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return pod
}

// schedule runs PreFilter, Filter on the node and Reserve, as the
// framework does, and returns the cycle state.
func (f *pluginFixture) schedule(pod *v1.Pod, n *v1.Node) (fwk.CycleState, *fwk.Status) {
	f.t.Helper()
	cs := framework.NewCycleState()
	if _, st := f.p.PreFilter(f.ctx, cs, pod, nil); !st.IsSuccess() {
		return cs, st
	}
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	if st := f.p.Filter(f.ctx, cs, pod, ni); !st.IsSuccess() {
		return cs, st
	}
	return cs, f.p.Reserve(f.ctx, cs, pod, n.Name)
}

// bindLikeTheController completes the binding of a claim whose volume
// the scheduler chose, as the PV controller does.
func (f *pluginFixture) bindLikeTheController(claimName, pvName string) {
	c, err := f.client.CoreV1().PersistentVolumeClaims("default").Get(f.ctx, claimName, metav1.GetOptions{})
	if err != nil {
		f.t.Error(err)
		return
	}
	c.Spec.VolumeName = pvName
	metav1.SetMetaDataAnnotation(&c.ObjectMeta, "pv.kubernetes.io/bind-completed", "yes")
	if _, err := f.client.CoreV1().PersistentVolumeClaims("default").Update(f.ctx, c, metav1.UpdateOptions{}); err != nil {
		f.t.Error(err)
	}
}

// TestPluginBindsChosenVolume: Reserve assumes the chosen volume so a
// second pod cannot have it; PreBind writes claimRef and the
// bound-by-controller annotation and returns once the claim is bound.
func TestPluginBindsChosenVolume(t *testing.T) {
	n1 := node("n1")
	f := newFixture(t, Args{}, n1, class("local", notSupportedProvisioner), localPV("pv1", "1Gi", "n1"),
		claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local"), podWith("p1", "c1"), podWith("p2", "c2"))
	cs, st := f.schedule(podWith("p1", "c1"), n1)
	if !st.IsSuccess() {
		t.Fatalf("p1: %v", st)
	}
	if _, st := f.schedule(podWith("p2", "c2"), n1); st.IsSuccess() || !strings.Contains(st.Message(), ReasonBindConflict) {
		t.Fatalf("p2 while pv1 is assumed for p1: %v, want %q", st, ReasonBindConflict)
	}
	if _, st := f.p.PreBindPreFlight(f.ctx, cs, podWith("p1", "c1"), "n1"); !st.IsSuccess() {
		t.Fatalf("PreBindPreFlight: %v", st)
	}
	done := make(chan *fwk.Status, 1)
	go func() { done <- f.p.PreBind(f.ctx, cs, podWith("p1", "c1"), "n1") }()
	var pv *v1.PersistentVolume
	for pv == nil || pv.Spec.ClaimRef == nil {
		select {
		case st := <-done:
			t.Fatalf("PreBind returned before writing the volume: %v", st)
		case <-time.After(10 * time.Millisecond):
		}
		var err error
		if pv, err = f.client.CoreV1().PersistentVolumes().Get(f.ctx, "pv1", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if pv.Spec.ClaimRef.Name != "c1" || pv.Spec.ClaimRef.UID != "uid-c1" || pv.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" {
		t.Fatalf("PreBind wrote claimRef %+v annotations %v", pv.Spec.ClaimRef, pv.Annotations)
	}
	select {
	case st := <-done:
		t.Fatalf("PreBind returned before the claim was bound: %v", st)
	case <-time.After(100 * time.Millisecond):
	}
	f.bindLikeTheController("c1", "pv1")
	if st := <-done; !st.IsSuccess() {
		t.Fatalf("PreBind: %v", st)
	}
}

// TestPluginUnreserveFreesVolume: a pod unreserved gives its volume back.
func TestPluginUnreserveFreesVolume(t *testing.T) {
	n1 := node("n1")
	f := newFixture(t, Args{}, n1, class("local", notSupportedProvisioner), localPV("pv1", "1Gi", "n1"),
		claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local"))
	cs, st := f.schedule(podWith("p1", "c1"), n1)
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	f.p.Unreserve(f.ctx, cs, podWith("p1", "c1"), "n1")
	f.p.Unreserve(f.ctx, cs, podWith("p1", "c1"), "n1") // idempotent
	if _, st := f.schedule(podWith("p2", "c2"), n1); !st.IsSuccess() {
		t.Fatalf("p2 after p1 was unreserved: %v", st)
	}
}

// TestPluginPreBindWriteFails: a refused write fails PreBind and gives
// the volume back to the cache.
func TestPluginPreBindWriteFails(t *testing.T) {
	n1 := node("n1")
	f := newFixture(t, Args{}, n1, class("local", notSupportedProvisioner), localPV("pv1", "1Gi", "n1"),
		claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local"), podWith("p1", "c1"))
	f.client.PrependReactor("update", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("injected conflict")
	})
	cs, st := f.schedule(podWith("p1", "c1"), n1)
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	if st := f.p.PreBind(f.ctx, cs, podWith("p1", "c1"), "n1"); st.IsSuccess() || !strings.Contains(st.Message(), "injected conflict") {
		t.Fatalf("PreBind with a refused write: %v", st)
	}
	if _, st := f.schedule(podWith("p2", "c2"), n1); !st.IsSuccess() {
		t.Fatalf("the volume was not given back: %v", st)
	}
}

// TestPluginProvisioning: a claim with no volume but a provisioner is
// annotated with the selected node; PreBind fails when the annotation
// is taken away (provisioning failed) and times out when nothing
// happens.
func TestPluginProvisioning(t *testing.T) {
	n1 := node("n1")
	f := newFixture(t, Args{BindTimeout: 300 * time.Millisecond}, n1, class("fast", "csi.example.com"),
		claim("c1", "1Gi", "fast"), podWith("p1", "c1"))
	cs, st := f.schedule(podWith("p1", "c1"), n1)
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	// While reserved, the claim counts as provisioned for n1 only.
	if got := f.p.selectedNode(claim("c1", "1Gi", "fast")); got != "n1" {
		t.Fatalf("reserved node %q", got)
	}
	st = f.p.PreBind(f.ctx, cs, podWith("p1", "c1"), "n1")
	if st.IsSuccess() || !strings.Contains(st.Message(), "waiting for the claims to be bound") {
		t.Fatalf("PreBind with nobody provisioning: %v", st)
	}
	c, err := f.client.CoreV1().PersistentVolumeClaims("default").Get(f.ctx, "c1", metav1.GetOptions{})
	if err != nil || c.Annotations["volume.kubernetes.io/selected-node"] != "n1" {
		t.Fatalf("claim annotations %v (%v)", c.Annotations, err)
	}
	if got := f.p.selectedNode(claim("c1", "1Gi", "fast")); got != "" {
		t.Fatalf("reservation outlived PreBind: %q", got)
	}

	// The provisioner gives up: the annotation goes, PreBind fails.
	c.Annotations = nil
	if _, err := f.client.CoreV1().PersistentVolumeClaims("default").Update(f.ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.p.args.BindTimeout = time.Minute
	cs, st = f.schedule(podWith("p1", "c1"), n1)
	if !st.IsSuccess() {
		t.Fatal(st)
	}
	f.client.PrependReactor("update", "persistentvolumeclaims", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// The write goes through, and the provisioner drops it at once.
		obj := a.(k8stesting.UpdateAction).GetObject().(*v1.PersistentVolumeClaim).DeepCopy()
		delete(obj.Annotations, "volume.kubernetes.io/selected-node")
		obj.ResourceVersion = "9"
		return true, obj, f.client.Tracker().Update(a.GetResource(), obj, obj.Namespace)
	})
	if st := f.p.PreBind(f.ctx, cs, podWith("p1", "c1"), "n1"); st.IsSuccess() || !strings.Contains(st.Message(), "provisioning failed") {
		t.Fatalf("PreBind after provisioning failed: %v", st)
	}
}

// TestPluginPreFilter: pods without claims skip; unbound claims of
// Immediate classes wait for the PV controller; a missing claim makes
// the pod unschedulable with upstream's message.
func TestPluginPreFilter(t *testing.T) {
	immediate := class("imm", "csi.example.com")
	immediate.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
	f := newFixture(t, Args{}, node("n1"), immediate, claim("ci", "1Gi", "imm"))
	ephemeralPod := podWith("eph")
	ephemeralPod.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}}}
	tests := []struct {
		pod  *v1.Pod
		code fwk.Code
		msg  string
	}{
		{podWith("none"), fwk.Skip, ""},
		{podWith("imm", "ci"), fwk.UnschedulableAndUnresolvable, ReasonUnboundImmediate},
		{podWith("gone", "nope"), fwk.UnschedulableAndUnresolvable, `persistentvolumeclaim "nope" not found`},
		// A generic ephemeral volume's claim is normally missing for a
		// moment after the pod is created: upstream says so.
		{ephemeralPod, fwk.UnschedulableAndUnresolvable, `waiting for ephemeral volume controller to create the persistentvolumeclaim "eph-scratch"`},
	}
	for _, tt := range tests {
		_, st := f.p.PreFilter(f.ctx, framework.NewCycleState(), tt.pod, nil)
		if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
			t.Errorf("%s: %v, want %v %q", tt.pod.Name, st, tt.code, tt.msg)
		}
	}
}

// activations records the pods a plugin moved back to the queue.
type activations struct {
	mu   sync.Mutex
	pods []string
}

func (a *activations) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range pods {
		a.pods = append(a.pods, k)
	}
	slices.Sort(a.pods)
}

func (a *activations) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.pods
	a.pods = nil
	return out
}

// TestPluginActivatesRejectedPods: the scheduler's queue and the volume
// cache take a new volume in apart, so a pod requeued by the volume's
// event can be turned away by a cache that has not seen it yet. A pod
// Filter turned away is activated by the next volume that becomes
// bindable, and at once when one did during its cycle.
func TestPluginActivatesRejectedPods(t *testing.T) {
	n1 := node("n1")
	f := newFixture(t, Args{}, n1, class("local", notSupportedProvisioner),
		claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local"))
	act := &activations{}
	f.p.activator = act

	// Turned away, then the volume reaches the cache: activated.
	if _, st := f.schedule(podWith("p1", "c1"), n1); !strings.Contains(st.Message(), ReasonBindConflict) {
		t.Fatalf("p1 with no volume: %v, want %q", st, ReasonBindConflict)
	}
	if got := act.take(); len(got) != 0 {
		t.Fatalf("activated before the cache changed: %v", got)
	}
	f.p.volumeChanged(localPV("pv1", "1Gi", "n1"))
	if got := act.take(); !slices.Equal(got, []string{"default/p1"}) {
		t.Fatalf("activated after the volume arrived: %v, want [default/p1]", got)
	}
	f.p.volumeChanged(localPV("pv1", "1Gi", "n1"))
	if got := act.take(); len(got) != 0 {
		t.Fatalf("a pod is activated once per rejection, got %v again", got)
	}

	// A volume bound takes choices away: nothing is activated.
	f.p.volumeChanged(localPV("pv1", "1Gi", "n1", claimRef("default", "c1", "uid-c1"), phase(v1.VolumeBound)))
	if got := act.take(); len(got) != 0 {
		t.Fatalf("a volume bound activated %v", got)
	}

	// A bindable volume arrives between PreFilter and Filter (too small
	// for c2): the rejection was made in a cycle older than the cache,
	// so the pod is activated at once.
	cs := framework.NewCycleState()
	if _, st := f.p.PreFilter(f.ctx, cs, podWith("p2", "c2"), nil); !st.IsSuccess() {
		t.Fatalf("PreFilter: %v", st)
	}
	f.p.volumeChanged(localPV("pv-small", "1Mi", "n1"))
	if got := act.take(); len(got) != 0 {
		t.Fatalf("nothing was turned away, yet %v activated", got)
	}
	ni := framework.NewNodeInfo()
	ni.SetNode(n1)
	if st := f.p.Filter(f.ctx, cs, podWith("p2", "c2"), ni); !strings.Contains(st.Message(), ReasonBindConflict) {
		t.Fatalf("p2 with pv1 taken and pv-small too small: %v, want %q", st, ReasonBindConflict)
	}
	if got := act.take(); !slices.Equal(got, []string{"default/p2"}) {
		t.Fatalf("turned away on a stale cycle: activated %v, want [default/p2]", got)
	}
}
