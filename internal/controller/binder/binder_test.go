package binder

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	storagehelpers "k8s.io/component-helpers/storage/volume"
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
	// provisioner, when set, is built for every run; one serves every
	// controller of a run, crashes included.
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

// newProvisioner builds the scenario's provisioner, nil when it has none,
// holding a backend for every volume of api it provisioned. One
// provisioner serves every controller of a run, crashes included, so that
// a backend leaked across a crash is seen.
func (s scenario) newProvisioner(api *fakeAPI) *fakeProvisioner {
	if s.provisioner == nil {
		return nil
	}
	p := s.provisioner()
	p.dead = api.isCrashed
	for _, pv := range api.volumes() {
		if pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] == p.name {
			p.volumes[pv.Name] = true
		}
	}
	return p
}

func (s scenario) newHarness(t testing.TB, api *fakeAPI, prov *fakeProvisioner) *harness {
	cfg := s.cfg
	if prov != nil {
		cfg.Provisioners = []Provisioner{prov}
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
	prov := s.newProvisioner(api)
	h := s.newHarness(t, api, prov)
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
	if v := backendViolations(api, prov); len(v) > 0 {
		t.Errorf("backend violations:\n%s", strings.Join(v, "\n"))
	}
	return api
}

// runFailing runs s with its nth write failing in mode. After a crash a
// fresh controller runs on what the API holds, with the same provisioner;
// the user's action (act) happens once, after the first controller ran
// unless it crashed before, else after the second.
func runFailing(t *testing.T, s scenario, n int, mode failMode) (*fakeAPI, *fakeProvisioner) {
	t.Helper()
	api := s.initialAPI()
	api.failAt, api.failMode = n, mode
	prov := s.newProvisioner(api)
	h := s.newHarness(t, api, prov)
	h.start()
	h.run()
	acted := false
	if s.act != nil && !api.crashed {
		s.act(h)
		h.run()
		acted = true
	}
	if mode != failCrash {
		return api, prov
	}
	if !api.crashed {
		t.Fatalf("crash at write %d did not happen; writes: %v", n, api.writes)
	}
	api.restart()
	h = s.newHarness(t, api, prov)
	h.start()
	h.run()
	if s.act != nil && !acted {
		s.act(h)
		h.run()
	}
	return api, prov
}

// backendViolations checks that every backend volume of prov belongs to
// exactly one PV (the one it was provisioned as) and every PV prov
// provisioned has its backend: nothing leaked, nothing lost.
func backendViolations(api *fakeAPI, prov *fakeProvisioner) []string {
	if prov == nil {
		return nil
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	pvs := map[string]bool{}
	var out []string
	for _, pv := range api.volumes() {
		if pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] != prov.name {
			continue
		}
		pvs[pv.Name] = true
		if !prov.volumes[pv.Name] {
			out = append(out, "volume "+pv.Name+" has no backend")
		}
	}
	for _, b := range slices.Sorted(maps.Keys(prov.volumes)) {
		if !pvs[b] {
			out = append(out, "backend "+b+" belongs to no volume (leaked)")
		}
	}
	return out
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

// TestBinderCrashAtEveryWrite runs every scenario, user actions
// included, once more for each write it makes: the controller crashes right after the API applied that
// write (its answer lost, nothing later written), then a fresh controller
// runs on what the API holds. The end state must be the same as without
// the crash, and the invariants must hold after every write.
func TestBinderCrashAtEveryWrite(t *testing.T) {
	for _, s := range scenarios() {
		t.Run(s.name, func(t *testing.T) {
			clean := runScenario(t, s)
			if t.Failed() {
				return
			}
			wantPVs, wantPVCs := clean.summary()
			for n := 1; n <= len(clean.writes); n++ {
				api, prov := runFailing(t, s, n, failCrash)
				compareFailed(t, fmt.Sprintf("crash after write %d (%s)", n, clean.writes[n-1]), api, prov, wantPVs, wantPVCs)
			}
		})
	}
}

// TestBinderConflictAtEveryWrite answers each write in turn with a 409:
// the controller must retry and reach the same end state.
func TestBinderConflictAtEveryWrite(t *testing.T) {
	for _, s := range scenarios() {
		t.Run(s.name, func(t *testing.T) {
			clean := runScenario(t, s)
			if t.Failed() {
				return
			}
			wantPVs, wantPVCs := clean.summary()
			for n := 1; n <= len(clean.writes); n++ {
				api, prov := runFailing(t, s, n, failConflict)
				compareFailed(t, fmt.Sprintf("conflict at write %d (%s)", n, clean.writes[n-1]), api, prov, wantPVs, wantPVCs)
			}
		})
	}
}

func compareFailed(t *testing.T, what string, api *fakeAPI, prov *fakeProvisioner, wantPVs, wantPVCs []string) {
	t.Helper()
	gotPVs, gotPVCs := api.summary()
	if !slices.Equal(gotPVs, wantPVs) || !slices.Equal(gotPVCs, wantPVCs) {
		t.Errorf("%s:\nvolumes: %s\n   want: %s\nclaims: %s\n  want: %s", what,
			fmtList(gotPVs), fmtList(wantPVs), fmtList(gotPVCs), fmtList(wantPVCs))
	}
	if len(api.violations) > 0 {
		t.Errorf("%s: invariant violations:\n%s", what, strings.Join(api.violations, "\n"))
	}
	if v := backendViolations(api, prov); len(v) > 0 {
		t.Errorf("%s: backend violations:\n%s", what, strings.Join(v, "\n"))
	}
}

func scenarios() []scenario {
	return slices.Concat(matchingScenarios(), bindingScenarios(), volumeScenarios(), reclaimScenarios(), provisioningScenarios(), fidelityScenarios())
}
