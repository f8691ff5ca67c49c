package volumerestrictions

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

func pod(ns, name string, claims ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: c, VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func claim(ns, name string, modes ...v1.PersistentVolumeAccessMode) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.PersistentVolumeClaimSpec{AccessModes: modes}}
}

func TestRefsOf(t *testing.T) {
	tests := []struct {
		name   string
		claims []string
		other  *v1.Pod
		want   int
	}{
		{"no claims", []string{"a"}, pod("ns", "p"), 0},
		{"same claim", []string{"a"}, pod("ns", "p", "a"), 1},
		{"two of the claims", []string{"a", "b"}, pod("ns", "p", "a", "b", "c"), 2},
		{"other claim", []string{"a"}, pod("ns", "p", "b"), 0},
		{"same name, other namespace", []string{"a"}, pod("other", "p", "a"), 0},
	}
	for _, tt := range tests {
		s := &state{claims: sets.New(tt.claims...)}
		if got := s.refsOf("ns", tt.other); got != tt.want {
			t.Errorf("%s: refsOf = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestIsReadWriteOncePod(t *testing.T) {
	tests := []struct {
		modes []v1.PersistentVolumeAccessMode
		want  bool
	}{
		{nil, false},
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, false},
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteMany, v1.ReadWriteOncePod}, true},
	}
	for _, tt := range tests {
		if got := isReadWriteOncePod(claim("ns", "c", tt.modes...)); got != tt.want {
			t.Errorf("%v: got %v, want %v", tt.modes, got, tt.want)
		}
	}
}

func TestHints(t *testing.T) {
	me := pod("ns", "me", "a", "b")
	tests := []struct {
		name string
		hint fwk.QueueingHintFn
		old  any
		new  any
		want fwk.QueueingHint
	}{
		{"deleted pod used my claim", hintPodDeleted, pod("ns", "x", "b"), nil, fwk.Queue},
		{"deleted pod used another claim", hintPodDeleted, pod("ns", "x", "c"), nil, fwk.QueueSkip},
		{"deleted pod in another namespace", hintPodDeleted, pod("other", "x", "a"), nil, fwk.QueueSkip},
		{"deleted pod without volumes", hintPodDeleted, pod("ns", "x"), nil, fwk.QueueSkip},
		{"my claim created", hintClaimAdded, nil, claim("ns", "a"), fwk.Queue},
		{"other claim created", hintClaimAdded, nil, claim("ns", "z"), fwk.QueueSkip},
		{"my claim's name elsewhere", hintClaimAdded, nil, claim("other", "a"), fwk.QueueSkip},
	}
	for _, tt := range tests {
		got, err := tt.hint(klog.Background(), me, tt.old, tt.new)
		if err != nil || got != tt.want {
			t.Errorf("%s: hint = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// usedClaims is a snapshot lister whose StorageInfos know which claims
// scheduled pods use (keys as the scheduler's NodeInfo makes them,
// "namespace/name"); Filter reads nothing else of the snapshot. (The
// scheduler's own Snapshot links upstream's volume binding metrics,
// which internal/importboundary_test.go forbids here.)
type usedClaims struct {
	fwk.SharedLister
	keys sets.Set[string]
}

func (u usedClaims) StorageInfos() fwk.StorageInfoLister { return u }
func (u usedClaims) IsPVCUsedByPods(key string) bool     { return u.keys.Has(key) }

func snapshot(claims []string) fwk.SharedLister {
	keys := sets.New[string]()
	for _, c := range claims {
		keys.Insert("ns/" + c)
	}
	return usedClaims{keys: keys}
}

// TestPlugin runs PreFilter and Filter, and the preemption extensions:
// removing the holder makes the node fit, adding it back does not.
func TestPlugin(t *testing.T) {
	claims := []*v1.PersistentVolumeClaim{
		claim("ns", "once", v1.ReadWriteOncePod),
		claim("ns", "shared", v1.ReadWriteOnce),
	}
	tests := []struct {
		name      string
		pod       *v1.Pod
		used      []string // claims scheduled pods use
		prefilter fwk.Code
		filter    fwk.Code // after PreFilter succeeded
	}{
		{"no claims", pod("ns", "p"), nil, fwk.Skip, 0},
		{"rwop claim free", pod("ns", "p", "once"), nil, fwk.Skip, 0},
		{"rwop claim in use", pod("ns", "p", "once"), []string{"once"}, fwk.Success, fwk.Unschedulable},
		{"rwo claim in use", pod("ns", "p", "shared"), []string{"shared"}, fwk.Skip, 0},
		{"missing claim", pod("ns", "p", "gone"), nil, fwk.UnschedulableAndUnresolvable, 0},
	}
	for _, tt := range tests {
		client := fake.NewClientset()
		f := informers.NewSharedInformerFactory(client, 0)
		store := f.Core().V1().PersistentVolumeClaims().Informer().GetStore()
		for _, c := range claims {
			if err := store.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		p := &Plugin{claims: f.Core().V1().PersistentVolumeClaims().Lister(), shared: snapshot(tt.used)}
		ctx := context.Background()
		cs := framework.NewCycleState()
		_, st := p.PreFilter(ctx, cs, tt.pod, nil)
		if st.Code() != tt.prefilter {
			t.Errorf("%s: PreFilter = %v, want %v", tt.name, st, tt.prefilter)
			continue
		}
		if !st.IsSuccess() {
			continue
		}
		ni := framework.NewNodeInfo()
		st = p.Filter(ctx, cs, tt.pod, ni)
		if st.Code() != tt.filter {
			t.Errorf("%s: Filter = %v, want %v", tt.name, st, tt.filter)
		}
		if st.Code() != fwk.Unschedulable {
			continue
		}
		if got := st.Reasons(); len(got) != 1 || got[0] != ReasonReadWriteOncePodConflict {
			t.Errorf("%s: reasons %q", tt.name, got)
		}
		holder, err := framework.NewPodInfo(pod("ns", "holder", "once"))
		if err != nil {
			t.Fatal(err)
		}
		if st := p.RemovePod(ctx, cs, tt.pod, holder, ni); !st.IsSuccess() {
			t.Fatal(st)
		}
		if st := p.Filter(ctx, cs, tt.pod, ni); !st.IsSuccess() {
			t.Errorf("%s: after RemovePod of the holder: Filter = %v", tt.name, st)
		}
		clone := cs.Clone()
		if st := p.AddPod(ctx, clone, tt.pod, holder, ni); !st.IsSuccess() {
			t.Fatal(st)
		}
		if st := p.Filter(ctx, clone, tt.pod, ni); st.Code() != fwk.Unschedulable {
			t.Errorf("%s: after AddPod of the holder: Filter = %v", tt.name, st)
		}
		if st := p.Filter(ctx, cs, tt.pod, ni); !st.IsSuccess() {
			t.Errorf("%s: AddPod on a clone changed the original: Filter = %v", tt.name, st)
		}
	}
}
