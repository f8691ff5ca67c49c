package protection

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"volplane/internal/logging"
)

var deleted = &metav1.Time{Time: time.Unix(100, 0)}

func claim(name string, mutate ...func(*v1.PersistentVolumeClaim)) *v1.PersistentVolumeClaim {
	c := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Finalizers: []string{PVCFinalizer}},
		Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending},
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func deleting(c *v1.PersistentVolumeClaim) { c.DeletionTimestamp = deleted }
func bound(c *v1.PersistentVolumeClaim)    { c.Status.Phase = v1.ClaimBound }

func pod(name, node string, phase v1.PodPhase, vols ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       v1.PodSpec{NodeName: node, Volumes: vols},
		Status:     v1.PodStatus{Phase: phase},
	}
}

func pvcVol(claim string) v1.Volume {
	return v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

func ephemeralVol(name string) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}}
}

func ownedBy(p *v1.Pod) func(*v1.PersistentVolumeClaim) {
	return func(c *v1.PersistentVolumeClaim) {
		c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID, Controller: ptr.To(true)}}
	}
}

func testCtx() context.Context {
	return logging.NewContext(context.Background(), slog.New(slog.DiscardHandler))
}

// newPVCTest builds pvc-protection over a fake API holding objs, with
// its informers filled from informerPods (nil: the same pods as the API).
func newPVCTest(t *testing.T, cfg Config, objs []runtime.Object, informerPods []*v1.Pod) (*PVCController, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := NewPVC(cfg, client, factory)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.PersistentVolumeClaim:
			_ = factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *v1.Pod:
			if informerPods == nil {
				_ = c.pods.Add(o)
			}
		}
	}
	for _, p := range informerPods {
		_ = c.pods.Add(p)
	}
	c.now = func() metav1.Time { return metav1.Unix(200, 0) }
	return c, client
}

func TestPVCProtection(t *testing.T) {
	running := pod("web", "node-1", v1.PodRunning, pvcVol("data"))
	eph := pod("job", "node-1", v1.PodRunning, ephemeralVol("scratch"))
	cases := []struct {
		name  string
		claim *v1.PersistentVolumeClaim
		pods  []*v1.Pod
		// informerPods, when set, is what the informer knows (it lags).
		informerPods  []*v1.Pod
		wantFinalizer bool
		wantUnused    v1.ConditionStatus
		disableUnused bool
	}{
		{name: "a claim without the finalizer gets it", claim: claim("data", func(c *v1.PersistentVolumeClaim) { c.Finalizers = nil }), wantFinalizer: true},
		{name: "a deleted claim no pod uses loses it", claim: claim("data", deleting)},
		{name: "a deleted claim used by a running pod keeps it", claim: claim("data", deleting), pods: []*v1.Pod{running}, wantFinalizer: true},
		{name: "a pending scheduled pod keeps it", claim: claim("data", deleting),
			pods: []*v1.Pod{pod("web", "node-1", v1.PodPending, pvcVol("data"))}, wantFinalizer: true},
		{name: "an unscheduled pod does not keep it", claim: claim("data", deleting),
			pods: []*v1.Pod{pod("web", "", v1.PodPending, pvcVol("data"))}},
		{name: "a Succeeded pod does not keep it", claim: claim("data", deleting),
			pods: []*v1.Pod{pod("web", "node-1", v1.PodSucceeded, pvcVol("data"))}},
		{name: "a Failed pod does not keep it", claim: claim("data", deleting),
			pods: []*v1.Pod{pod("web", "node-1", v1.PodFailed, pvcVol("data"))}},
		{name: "a pod using another claim does not keep it", claim: claim("data", deleting),
			pods: []*v1.Pod{pod("web", "node-1", v1.PodRunning, pvcVol("other"))}},
		{name: "a pod in the informer's lag still keeps it (live list)", claim: claim("data", deleting),
			pods: []*v1.Pod{running}, informerPods: []*v1.Pod{}, wantFinalizer: true},
		{name: "a generic ephemeral volume's pod keeps its claim", claim: claim("job-scratch", deleting, ownedBy(eph)),
			pods: []*v1.Pod{eph}, wantFinalizer: true},
		{name: "a claim named like an ephemeral volume but not owned by the pod is free", claim: claim("job-scratch", deleting),
			pods: []*v1.Pod{eph}},
		{name: "a bound claim nobody uses is Unused", claim: claim("data", bound), wantFinalizer: true, wantUnused: v1.ConditionTrue},
		{name: "a bound claim a pod uses is not Unused", claim: claim("data", bound), pods: []*v1.Pod{pod("web", "", v1.PodPending, pvcVol("data"))},
			wantFinalizer: true, wantUnused: v1.ConditionFalse},
		{name: "the Unused condition can be turned off", claim: claim("data", bound), disableUnused: true, wantFinalizer: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := []runtime.Object{tc.claim}
			for _, p := range tc.pods {
				objs = append(objs, p)
			}
			c, client := newPVCTest(t, Config{DisableUnusedCondition: tc.disableUnused}, objs, tc.informerPods)
			if err := c.sync(testCtx(), "ns/"+tc.claim.Name); err != nil {
				t.Fatal(err)
			}
			got, err := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), tc.claim.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if has := slices.Contains(got.Finalizers, PVCFinalizer); has != tc.wantFinalizer {
				t.Errorf("finalizer present = %v, want %v (finalizers %v)", has, tc.wantFinalizer, got.Finalizers)
			}
			cond := findCondition(got.Status.Conditions)
			switch {
			case tc.wantUnused == "" && cond != nil:
				t.Errorf("unexpected Unused condition %+v", *cond)
			case tc.wantUnused != "" && (cond == nil || cond.Status != tc.wantUnused):
				t.Errorf("Unused condition %+v, want status %s", cond, tc.wantUnused)
			case cond != nil && !cond.LastTransitionTime.Equal(ptr.To(metav1.Unix(200, 0))):
				t.Errorf("Unused since %v, want the sync's time", cond.LastTransitionTime)
			}
		})
	}
}

func TestPVCProtectionQueuesClaimsOfPods(t *testing.T) {
	c, _ := newPVCTest(t, Config{}, nil, nil)
	eph := pod("job", "node-1", v1.PodSucceeded, ephemeralVol("scratch"), pvcVol("data"))
	c.onPod(nil, eph)
	var got []string
	for c.queue.Len() > 0 {
		k, _ := c.queue.Get()
		got = append(got, k)
		c.queue.Done(k)
	}
	slices.Sort(got)
	if want := []string{"ns/data", "ns/job-scratch"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v", got, want)
	}
}

func TestPVProtection(t *testing.T) {
	pv := func(phase v1.PersistentVolumePhase, del bool, finalizers ...string) *v1.PersistentVolume {
		p := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv", Finalizers: finalizers}, Status: v1.PersistentVolumeStatus{Phase: phase}}
		if del {
			p.DeletionTimestamp = deleted
		}
		return p
	}
	cases := []struct {
		name string
		pv   *v1.PersistentVolume
		want bool
	}{
		{"a volume without the finalizer gets it", pv(v1.VolumeAvailable, false), true},
		{"a deleted Bound volume keeps it", pv(v1.VolumeBound, true, PVFinalizer), true},
		{"a deleted Released volume loses it", pv(v1.VolumeReleased, true, PVFinalizer), false},
		{"a deleted Available volume loses it", pv(v1.VolumeAvailable, true, PVFinalizer), false},
		{"a deleted Failed volume loses it", pv(v1.VolumeFailed, true, PVFinalizer), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.pv)
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := NewPV(Config{}, client, factory)
			if err != nil {
				t.Fatal(err)
			}
			_ = factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(tc.pv)
			if err := c.sync(testCtx(), "pv"); err != nil {
				t.Fatal(err)
			}
			got, err := client.CoreV1().PersistentVolumes().Get(context.Background(), "pv", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if has := slices.Contains(got.Finalizers, PVFinalizer); has != tc.want {
				t.Errorf("finalizer present = %v, want %v", has, tc.want)
			}
		})
	}
}
