package binder

import (
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// scenario is one row of the binder's table tests: initial volumes and
// claims -> expected volumes, claims and events. The driver runs the
// controller until it is idle; act (if set) then changes the world as a
// user would and the controller runs again.
type scenario struct {
	name    string
	pvs     []*v1.PersistentVolume
	pvcs    []*v1.PersistentVolumeClaim
	classes []*storagev1.StorageClass
	pods    []*v1.Pod
	nodes   []string
	// provisioner, when set, is built fresh for every run.
	provisioner func() *fakeProvisioner
	recycler    func() *fakeRecycler
	cfg         Config
	act         func(h *harness)

	wantPVs    []string
	wantPVCs   []string
	wantEvents []string // distinct "object Type Reason message"; nil means none
}

const (
	rwo = v1.ReadWriteOnce
	rox = v1.ReadOnlyMany
	rwx = v1.ReadWriteMany

	immediate = storagev1.VolumeBindingImmediate
	wffc      = storagev1.VolumeBindingWaitForFirstConsumer
)

func scheduledPod(name, node string, claims ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + "pod-" + "x"}}
	p.UID = "uid-pod-" + "y"
	p.Spec.NodeName = node
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: c, VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func (s scenario) newHarness(t testing.TB, api *fakeAPI) *harness {
	cfg := s.cfg
	if s.provisioner != nil {
		cfg.Provisioners = []Provisioner{s.provisioner()}
	}
	if s.recycler != nil {
		cfg.Recycler = s.recycler()
	}
	return newHarness(t, api, setup{classes: s.classes, pods: s.pods, nodes: s.nodes, cfg: cfg})
}

func (s scenario) initialAPI() *fakeAPI {
	api := newFakeAPI()
	var objs []runtime.Object
	for _, pv := range s.pvs {
		objs = append(objs, pv)
	}
	for _, pvc := range s.pvcs {
		objs = append(objs, pvc)
	}
	api.add(objs...)
	api.snapshotInvariants()
	return api
}

// runScenario runs s once without failures and checks everything.
func runScenario(t *testing.T, s scenario) *fakeAPI {
	t.Helper()
	api := s.initialAPI()
	h := s.newHarness(t, api)
	h.start()
	h.run()
	if s.act != nil {
		s.act(h)
		h.run()
	}
	gotPVs, gotPVCs := api.summary()
	check(t, "volumes", gotPVs, s.wantPVs)
	check(t, "claims", gotPVCs, s.wantPVCs)
	check(t, "events", h.events.distinct(), slices.Sorted(slices.Values(s.wantEvents)))
	if len(api.violations) > 0 {
		t.Errorf("invariant violations:\n%s", strings.Join(api.violations, "\n"))
	}
	return api
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got: %s\nwant: %s", what, fmtList(got), fmtList(want))
	}
}

func fmtList(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return "\n  " + strings.Join(l, "\n  ")
}

var errBoom = errors.New("boom")

func TestBinderScenarios(t *testing.T) {
	for _, s := range scenarios() {
		t.Run(s.name, func(t *testing.T) { runScenario(t, s) })
	}
}

// TestBinderCrashAtEveryWrite runs every scenario once more for each
// write it makes: the controller crashes right after the API applied that
// write (its answer lost, nothing later written), then a fresh controller
// runs on what the API holds. The end state must be the same as without
// the crash, and the invariants must hold after every write.
func TestBinderCrashAtEveryWrite(t *testing.T) {
	for _, s := range scenarios() {
		if s.act != nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			clean := runScenario(t, s)
			if t.Failed() {
				return
			}
			wantPVs, wantPVCs := clean.summary()
			t.Logf("%d writes, each crashed at: %v", len(clean.writes), clean.writes)
			for n := 1; n <= len(clean.writes); n++ {
				api := s.initialAPI()
				api.failAt, api.failMode = n, failCrash
				h := s.newHarness(t, api)
				h.start()
				h.run()
				if !api.crashed {
					t.Fatalf("crash at write %d of %d did not happen; writes: %v", n, len(clean.writes), api.writes)
				}
				api.restart()
				h2 := s.newHarness(t, api)
				h2.start()
				h2.run()
				gotPVs, gotPVCs := api.summary()
				if !slices.Equal(gotPVs, wantPVs) || !slices.Equal(gotPVCs, wantPVCs) {
					t.Errorf("crash after write %d (%s):\nvolumes: %s\n   want: %s\nclaims: %s\n  want: %s", n, clean.writes[n-1],
						fmtList(gotPVs), fmtList(wantPVs), fmtList(gotPVCs), fmtList(wantPVCs))
				}
				if len(api.violations) > 0 {
					t.Errorf("crash after write %d: invariant violations:\n%s", n, strings.Join(api.violations, "\n"))
				}
			}
		})
	}
}

// TestBinderConflictAtEveryWrite answers each write in turn with a 409:
// the controller must retry and reach the same end state.
func TestBinderConflictAtEveryWrite(t *testing.T) {
	for _, s := range scenarios() {
		if s.act != nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			clean := runScenario(t, s)
			if t.Failed() {
				return
			}
			wantPVs, wantPVCs := clean.summary()
			for n := 1; n <= len(clean.writes); n++ {
				api := s.initialAPI()
				api.failAt, api.failMode = n, failConflict
				h := s.newHarness(t, api)
				h.start()
				h.run()
				gotPVs, gotPVCs := api.summary()
				if !slices.Equal(gotPVs, wantPVs) || !slices.Equal(gotPVCs, wantPVCs) {
					t.Errorf("conflict at write %d (%s):\nvolumes: %s\n   want: %s\nclaims: %s\n  want: %s", n, clean.writes[n-1],
						fmtList(gotPVs), fmtList(wantPVs), fmtList(gotPVCs), fmtList(wantPVCs))
				}
				if len(api.violations) > 0 {
					t.Errorf("conflict at write %d: invariant violations:\n%s", n, strings.Join(api.violations, "\n"))
				}
			}
		})
	}
}

func scenarios() []scenario {
	return slices.Concat(matchingScenarios(), bindingScenarios(), volumeScenarios(), reclaimScenarios(), provisioningScenarios(), fidelityScenarios())
}
