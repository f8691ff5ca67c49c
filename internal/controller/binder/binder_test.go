package binder

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"
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
	return slices.Concat(matchingScenarios(), bindingScenarios(), volumeScenarios(), reclaimScenarios(), provisioningScenarios())
}

func matchingScenarios() []scenario {
	return []scenario{
		{
			name: "smallest volume that fits wins",
			pvs:  []*v1.PersistentVolume{newPV("pv-1g", "1Gi"), newPV("pv-10g", "10Gi"), newPV("pv-5g", "5Gi")},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "3Gi")},
			wantPVs: []string{
				"pv-10g Available",
				"pv-1g Available",
				"pv-5g Bound claim=default/c1(uid-c1) [bound-by-controller]",
			},
			wantPVCs: []string{"c1 Bound volume=pv-5g cap=5Gi [bind-completed,bound-by-controller]"},
		},
		{
			name:       "no volume and no class: Pending with upstream's event",
			pvs:        []*v1.PersistentVolume{newPV("pv-1g", "1Gi")},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "3Gi")},
			wantPVs:    []string{"pv-1g Available"},
			wantPVCs:   []string{"c1 Pending"},
			wantEvents: []string{"pvc/default/c1 Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name:       "volume mode must be equal",
			pvs:        []*v1.PersistentVolume{newPV("pv-fs", "10Gi"), newPV("pv-block", "20Gi", pvBlock())},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c-block", "1Gi", pvcBlock()), newPVC("c-fs", "15Gi")},
			wantPVs:    []string{"pv-block Bound claim=default/c-block(uid-c-block) [bound-by-controller]", "pv-fs Available"},
			wantPVCs:   []string{"c-block Bound volume=pv-block cap=20Gi [bind-completed,bound-by-controller]", "c-fs Pending"},
			wantEvents: []string{"pvc/default/c-fs Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name: "storage class must be equal, empty matches empty only",
			pvs:  []*v1.PersistentVolume{newPV("pv-gold", "1Gi", pvClass("gold")), newPV("pv-none", "5Gi")},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c-gold", "1Gi", pvcClass("gold")), newPVC("c-silver", "1Gi", pvcClass("silver"))},
			classes: []*storagev1.StorageClass{
				newClass("gold", "kubernetes.io/no-provisioner", immediate),
				newClass("silver", "kubernetes.io/no-provisioner", immediate),
			},
			wantPVs: []string{"pv-gold Bound claim=default/c-gold(uid-c-gold) [bound-by-controller]", "pv-none Available"},
			wantPVCs: []string{
				"c-gold Bound volume=pv-gold cap=1Gi [bind-completed,bound-by-controller] class=gold",
				"c-silver Pending class=silver",
			},
			wantEvents: []string{"pvc/default/c-silver Warning ProvisioningFailed no volume plugin matched name: kubernetes.io/no-provisioner"},
		},
		{
			name: "access modes: volume must offer every mode asked",
			pvs:  []*v1.PersistentVolume{newPV("pv-rwo", "1Gi"), newPV("pv-rwx", "9Gi", pvModes(rwo, rwx))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcModes(rwx))},
			wantPVs: []string{
				"pv-rwo Available",
				"pv-rwx Bound claim=default/c1(uid-c1) [bound-by-controller]",
			},
			wantPVCs: []string{"c1 Bound volume=pv-rwx cap=9Gi [bind-completed,bound-by-controller]"},
		},
		{
			name: "access modes: the group with fewest modes first, smallest within it",
			pvs: []*v1.PersistentVolume{
				newPV("pv-rwo-big", "10Gi"), newPV("pv-rwo-mid", "5Gi"),
				newPV("pv-rwo-rox-small", "2Gi", pvModes(rwo, rox)),
			},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "2Gi")},
			wantPVs: []string{
				"pv-rwo-big Available",
				"pv-rwo-mid Bound claim=default/c1(uid-c1) [bound-by-controller]",
				"pv-rwo-rox-small Available",
			},
			wantPVCs: []string{"c1 Bound volume=pv-rwo-mid cap=5Gi [bind-completed,bound-by-controller]"},
		},
		{
			name: "label selector",
			pvs:  []*v1.PersistentVolume{newPV("pv-plain", "1Gi"), newPV("pv-fast", "8Gi", pvLabels("tier", "fast"))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcSelector("tier", "fast"))},
			wantPVs: []string{
				"pv-fast Bound claim=default/c1(uid-c1) [bound-by-controller]",
				"pv-plain Available",
			},
			wantPVCs: []string{"c1 Bound volume=pv-fast cap=8Gi [bind-completed,bound-by-controller]"},
		},
		{
			name:       "a volume being deleted is not matched",
			pvs:        []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvDeleting())},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi")},
			wantPVs:    []string{"pv-1 Available deleting"},
			wantPVCs:   []string{"c1 Pending"},
			wantEvents: []string{"pvc/default/c1 Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name: "largest request first: the exact fit is kept for the claim that needs it",
			pvs:  []*v1.PersistentVolume{newPV("pv-5g", "5Gi"), newPV("pv-10g", "10Gi")},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c-small", "1Gi"), newPVC("c-5g", "5Gi")},
			wantPVs: []string{
				"pv-10g Bound claim=default/c-small(uid-c-small) [bound-by-controller]",
				"pv-5g Bound claim=default/c-5g(uid-c-5g) [bound-by-controller]",
			},
			wantPVCs: []string{
				"c-5g Bound volume=pv-5g cap=5Gi [bind-completed,bound-by-controller]",
				"c-small Bound volume=pv-10g cap=10Gi [bind-completed,bound-by-controller]",
			},
		},
		{
			name:     "exact fit for every claim of a batch",
			pvs:      exactPVs(8),
			pvcs:     exactPVCs(8),
			wantPVs:  exactWantPVs(8),
			wantPVCs: exactWantPVCs(8),
		},
		{
			name: "two claims, one volume: one waits",
			pvs:  []*v1.PersistentVolume{newPV("pv-1", "5Gi")},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c-a", "1Gi"), newPVC("c-b", "2Gi")},
			wantPVs: []string{
				"pv-1 Bound claim=default/c-b(uid-c-b) [bound-by-controller]",
			},
			wantPVCs: []string{
				"c-a Pending",
				"c-b Bound volume=pv-1 cap=5Gi [bind-completed,bound-by-controller]",
			},
			wantEvents: []string{"pvc/default/c-a Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name: "a delayed-binding claim is not matched; the scheduler binds it",
			pvs:  []*v1.PersistentVolume{newPV("pv-local", "5Gi", pvClass("local"))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("local"))},
			classes: []*storagev1.StorageClass{
				newClass("local", "kubernetes.io/no-provisioner", wffc),
			},
			wantPVs:    []string{"pv-local Available"},
			wantPVCs:   []string{"c1 Pending class=local"},
			wantEvents: []string{"pvc/default/c1 Normal WaitForFirstConsumer " + msgWaitForConsumer},
		},
		{
			name:     "a delayed-binding claim names the pod waiting to be scheduled",
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("local"))},
			classes:  []*storagev1.StorageClass{newClass("local", "kubernetes.io/no-provisioner", wffc)},
			pods:     []*v1.Pod{scheduledPod("web-0", "", "c1")},
			wantPVCs: []string{"c1 Pending class=local"},
			wantEvents: []string{
				"pvc/default/c1 Normal WaitForPodScheduled waiting for pod web-0 to be scheduled",
			},
		},
		{
			name: "a delayed-binding claim takes the volume the scheduler pre-bound",
			pvs: []*v1.PersistentVolume{
				newPV("pv-local", "5Gi", pvClass("local"), pvClaim("c1", "uid-c1"), pvAnn(storagehelpers.AnnBoundByController, "yes")),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("local"))},
			classes:  []*storagev1.StorageClass{newClass("local", "kubernetes.io/no-provisioner", wffc)},
			wantPVs:  []string{"pv-local Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs: []string{"c1 Bound volume=pv-local cap=5Gi [bind-completed,bound-by-controller] class=local"},
		},
	}
}

func exactPVs(n int) []*v1.PersistentVolume {
	var out []*v1.PersistentVolume
	for i := n; i >= 1; i-- {
		out = append(out, newPV(fmt.Sprintf("pv-%02d", i), fmt.Sprintf("%dGi", i)))
	}
	return out
}

func exactPVCs(n int) []*v1.PersistentVolumeClaim {
	var out []*v1.PersistentVolumeClaim
	for i := 1; i <= n; i++ {
		out = append(out, newPVC(fmt.Sprintf("c-%02d", i), fmt.Sprintf("%dGi", i)))
	}
	return out
}

func exactWantPVs(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("pv-%02d Bound claim=default/c-%02d(uid-c-%02d) [bound-by-controller]", i, i, i))
	}
	return out
}

func exactWantPVCs(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("c-%02d Bound volume=pv-%02d cap=%dGi [bind-completed,bound-by-controller]", i, i, i))
	}
	return out
}

func bindingScenarios() []scenario {
	return []scenario{
		{
			name: "a volume pre-bound by name goes only to its claim",
			pvs:  []*v1.PersistentVolume{newPV("pv-1", "5Gi", pvClaim("c2", ""))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi"), newPVC("c2", "5Gi")},
			wantPVs: []string{
				"pv-1 Bound claim=default/c2(uid-c2)",
			},
			wantPVCs: []string{
				"c1 Pending",
				"c2 Bound volume=pv-1 cap=5Gi [bind-completed,bound-by-controller]",
			},
			wantEvents: []string{"pvc/default/c1 Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name:     "a volume pre-bound to a claim in a missing namespace is never bound elsewhere",
			pvs:      []*v1.PersistentVolume{newPV("pv-1", "5Gi", pvClaim("gone/c1", ""))},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi"), newPVC("c2", "1Gi")},
			wantPVs:  []string{"pv-1 Available claim=gone/c1"},
			wantPVCs: []string{"c1 Pending", "c2 Pending"},
			wantEvents: []string{
				"pvc/default/c1 Normal FailedBinding " + msgNoVolumeNoClass,
				"pvc/default/c2 Normal FailedBinding " + msgNoVolumeNoClass,
			},
		},
		{
			name: "a claim naming its volume takes that one",
			pvs:  []*v1.PersistentVolume{newPV("pv-small", "1Gi"), newPV("pv-big", "9Gi")},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcVolume("pv-big"))},
			wantPVs: []string{
				"pv-big Bound claim=default/c1(uid-c1) [bound-by-controller]",
				"pv-small Available",
			},
			wantPVCs: []string{"c1 Bound volume=pv-big cap=9Gi [bind-completed]"},
		},
		{
			name:     "a claim naming both ways binds without controller annotations",
			pvs:      []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvClaim("c1", ""))},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcVolume("pv-1"))},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1)"},
			wantPVCs: []string{"c1 Bound volume=pv-1 cap=1Gi [bind-completed]"},
		},
		{
			name:       "a claim naming a missing volume waits with an event",
			pvs:        []*v1.PersistentVolume{newPV("pv-1", "5Gi")},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcVolume("nope"))},
			wantPVs:    []string{"pv-1 Available"},
			wantPVCs:   []string{"c1 Pending volume=nope"},
			wantEvents: []string{`pvc/default/c1 Warning FailedBinding volume "nope" requested by the claim does not exist`},
		},
		{
			name:       "a claim naming a volume that does not fit waits with an event",
			pvs:        []*v1.PersistentVolume{newPV("pv-1", "1Gi")},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "5Gi", pvcVolume("pv-1"))},
			wantPVs:    []string{"pv-1 Available"},
			wantPVCs:   []string{"c1 Pending volume=pv-1"},
			wantEvents: []string{`pvc/default/c1 Warning VolumeMismatch Cannot bind to requested volume "pv-1": requested PV is too small`},
		},
		{
			name:       "a claim naming a volume bound to another claim waits",
			pvs:        []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvClaim("other", "uid-other"), pvPhase(v1.VolumeBound))},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcVolume("pv-1")), newPVC("other", "1Gi", pvcBound("pv-1"))},
			wantPVs:    []string{"pv-1 Bound claim=default/other(uid-other)"},
			wantPVCs:   []string{"c1 Pending volume=pv-1", "other Bound volume=pv-1 [bind-completed,bound-by-controller]"},
			wantEvents: []string{`pvc/default/c1 Warning FailedBinding volume "pv-1" already bound to a different claim.`},
		},
		{
			name: "resume after the volume was written: the claim gets that volume, not a better one",
			pvs: []*v1.PersistentVolume{
				newPV("pv-small", "1Gi"),
				newPV("pv-big", "9Gi", pvClaim("c1", "uid-c1"), pvAnn(storagehelpers.AnnBoundByController, "yes")),
			},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi")},
			wantPVs: []string{
				"pv-big Bound claim=default/c1(uid-c1) [bound-by-controller]",
				"pv-small Available",
			},
			wantPVCs: []string{"c1 Bound volume=pv-big cap=9Gi [bind-completed,bound-by-controller]"},
		},
		{
			name: "resume after the claim was written: its status is completed",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "2Gi", pvClaim("c1", "uid-c1"), pvAnn(storagehelpers.AnnBoundByController, "yes"), pvPhase(v1.VolumeBound)),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"), pvcPhase(v1.ClaimPending))},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs: []string{"c1 Bound volume=pv-1 cap=2Gi [bind-completed,bound-by-controller]"},
		},
		{
			name:     "a bound claim whose volume lost its claimRef binds it again",
			pvs:      []*v1.PersistentVolume{newPV("pv-1", "2Gi")},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"))},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs: []string{"c1 Bound volume=pv-1 [bind-completed,bound-by-controller]"},
		},
		{
			name:       "a bound claim whose volume is gone is Lost",
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"))},
			wantPVCs:   []string{"c1 Lost volume=pv-1 [bind-completed,bound-by-controller]"},
			wantEvents: []string{"pvc/default/c1 Warning ClaimLost " + msgClaimLostVolume},
		},
		{
			name: "a Lost claim is Bound again when its volume returns",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "2Gi", pvClaim("c1", "uid-c1"), pvPhase(v1.VolumePending)),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"), pvcPhase(v1.ClaimLost))},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1)"},
			wantPVCs: []string{"c1 Bound volume=pv-1 cap=2Gi [bind-completed,bound-by-controller]"},
		},
		{
			name: "Lost and back: the volume is deleted, then created again",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "2Gi", pvClaim("c1", "uid-c1"), pvPhase(v1.VolumeBound)),
			},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"))},
			act: func(h *harness) {
				h.api.userDelete(true, "pv-1")
				h.run()
				if _, pvcs := h.api.summary(); pvcs[0] != "c1 Lost volume=pv-1 [bind-completed,bound-by-controller]" {
					h.t.Errorf("after the volume is deleted: %v", pvcs)
				}
				h.api.userCreate(newPV("pv-1", "2Gi", pvClaim("c1", "uid-c1"), pvPhase("")))
			},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1)"},
			wantPVCs: []string{"c1 Bound volume=pv-1 cap=2Gi [bind-completed,bound-by-controller]"},
			wantEvents: []string{
				"pvc/default/c1 Warning ClaimLost " + msgClaimLostVolume,
			},
		},
		{
			name:       "a bound claim that lost its volumeName is Lost",
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcAnn(storagehelpers.AnnBindCompleted, "yes"), pvcPhase(v1.ClaimBound))},
			wantPVCs:   []string{"c1 Lost [bind-completed]"},
			wantEvents: []string{"pvc/default/c1 Warning ClaimLost " + msgClaimLostRef},
		},
		{
			name: "a claim whose volume belongs to another claim is Lost (misbound)",
			pvs:  []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvClaim("c2", "uid-c2"), pvPhase(v1.VolumeBound))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1")), newPVC("c2", "1Gi", pvcVolume("pv-1"),
				pvcAnn(storagehelpers.AnnBindCompleted, "yes"), pvcPhase(v1.ClaimBound))},
			wantPVs: []string{"pv-1 Bound claim=default/c2(uid-c2)"},
			wantPVCs: []string{
				"c1 Lost volume=pv-1 [bind-completed,bound-by-controller]",
				"c2 Bound volume=pv-1 [bind-completed]",
			},
			wantEvents: []string{"pvc/default/c1 Warning ClaimMisbound " + msgClaimMisbound},
		},
	}
}

func volumeScenarios() []scenario {
	return []scenario{
		{
			name:    "a new volume becomes Available",
			pvs:     []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvPhase(v1.VolumePending))},
			wantPVs: []string{"pv-1 Available"},
		},
		{
			name: "a volume the controller bound to a claim bound elsewhere is unbound",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "1Gi", pvClaim("c1", "uid-c1"), pvAnn(storagehelpers.AnnBoundByController, "yes"), pvPhase(v1.VolumeBound)),
				newPV("pv-2", "1Gi", pvClaim("c1", "uid-c1"), pvPhase(v1.VolumeBound)),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-2"))},
			wantPVs:  []string{"pv-1 Available", "pv-2 Bound claim=default/c1(uid-c1)"},
			wantPVCs: []string{"c1 Bound volume=pv-2 [bind-completed,bound-by-controller]"},
		},
		{
			name: "a volume its creator pre-bound to a claim bound elsewhere keeps the name only",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "1Gi", pvClaim("c1", "uid-c1"), pvPhase(v1.VolumeBound)),
				newPV("pv-2", "1Gi", pvClaim("c1", "uid-c1"), pvAnn(storagehelpers.AnnBoundByController, "yes"), pvPhase(v1.VolumeBound)),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-2"))},
			wantPVs:  []string{"pv-1 Available claim=default/c1", "pv-2 Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs: []string{"c1 Bound volume=pv-2 [bind-completed,bound-by-controller]"},
		},
		{
			name: "volume mode mismatch with a pre-bound claim is reported on both",
			pvs: []*v1.PersistentVolume{
				newPV("pv-1", "1Gi", pvBlock(), pvClaim("c1", "uid-c1")),
			},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi")},
			wantPVs:  []string{"pv-1 Available claim=default/c1(uid-c1)"},
			wantPVCs: []string{"c1 Pending"},
			wantEvents: []string{
				"pv/pv-1 Warning VolumeMismatch Cannot bind PersistentVolume to requested PersistentVolumeClaim \"c1\" due to incompatible volumeMode.",
				"pvc/default/c1 Normal FailedBinding " + msgNoVolumeNoClass,
				"pvc/default/c1 Warning VolumeMismatch Cannot bind PersistentVolume \"pv-1\" to requested PersistentVolumeClaim due to incompatible volumeMode.",
			},
		},
	}
}

func reclaimScenarios() []scenario {
	boundPV := func(policy v1.PersistentVolumeReclaimPolicy, opts ...pvOpt) *v1.PersistentVolume {
		return newPV("pv-1", "1Gi", append([]pvOpt{pvClaim("c1", "uid-c1"), pvPhase(v1.VolumeBound),
			pvAnn(storagehelpers.AnnBoundByController, "yes"), pvPolicy(policy)}, opts...)...)
	}
	provisioned := pvAnn(storagehelpers.AnnDynamicallyProvisioned, "fake.io/prov")
	return []scenario{
		{
			name:    "Retain: a released volume stays Released",
			pvs:     []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimRetain)},
			wantPVs: []string{"pv-1 Released claim=default/c1(uid-c1) [bound-by-controller]"},
		},
		{
			name: "Retain: Released -> claimRef removed -> Available -> bound again",
			pvs:  []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimRetain)},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c2", "1Gi")},
			act: func(h *harness) {
				if pvs, _ := h.api.summary(); pvs[0] != "pv-1 Released claim=default/c1(uid-c1) [bound-by-controller]" {
					h.t.Errorf("before claimRef is removed: %v", pvs)
				}
				h.api.userUpdateVolume("pv-1", func(pv *v1.PersistentVolume) {
					pv.Spec.ClaimRef = nil
					delete(pv.Annotations, storagehelpers.AnnBoundByController)
				})
			},
			wantPVs:    []string{"pv-1 Bound claim=default/c2(uid-c2) [bound-by-controller]"},
			wantPVCs:   []string{"c2 Bound volume=pv-1 cap=1Gi [bind-completed,bound-by-controller]"},
			wantEvents: []string{"pvc/default/c2 Normal FailedBinding " + msgNoVolumeNoClass},
		},
		{
			name:        "Delete: the provisioner deletes the backend, then the volume is deleted",
			pvs:         []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimDelete, provisioned)},
			provisioner: func() *fakeProvisioner { return newFakeProvisioner("fake.io/prov") },
		},
		{
			name:    "Delete: a volume of an external provisioner is left to it",
			pvs:     []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimDelete, pvAnn(storagehelpers.AnnDynamicallyProvisioned, "csi.example.com"))},
			wantPVs: []string{"pv-1 Released claim=default/c1(uid-c1) [bound-by-controller,provisioned-by=csi.example.com]"},
		},
		{
			name:    "Delete: a volume no provisioner can delete is Failed",
			pvs:     []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimDelete)},
			wantPVs: []string{"pv-1 Failed claim=default/c1(uid-c1) [bound-by-controller] reason=VolumeFailedDelete"},
			wantEvents: []string{
				`pv/pv-1 Warning VolumeFailedDelete error getting deleter volume plugin for volume "pv-1": no deletable volume plugin matched`,
			},
		},
		{
			name: "Delete: a failing backend leaves the volume Failed and is retried",
			pvs:  []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimDelete, provisioned)},
			provisioner: func() *fakeProvisioner {
				p := newFakeProvisioner("fake.io/prov")
				p.failDel = errBoom
				return p
			},
			act: func(h *harness) {
				if pvs, _ := h.api.summary(); len(pvs) != 1 || !strings.HasPrefix(pvs[0], "pv-1 Failed") {
					h.t.Errorf("after the failed delete: %v", pvs)
				}
				h.ctrl.provisioners["fake.io/prov"].(*fakeProvisioner).failDel = nil
				h.resync()
			},
			wantEvents: []string{"pv/pv-1 Warning VolumeFailedDelete boom"},
		},
		{
			name:     "Recycle: scrubbed, then Available and bound again",
			pvs:      []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimRecycle)},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c2", "1Gi")},
			wantPVs:  []string{"pv-1 Bound claim=default/c2(uid-c2) [bound-by-controller]"},
			wantPVCs: []string{"c2 Bound volume=pv-1 cap=1Gi [bind-completed,bound-by-controller]"},
			wantEvents: []string{
				"pv/pv-1 Normal RecyclerPod Recycler pod: scrubbed",
				"pv/pv-1 Normal VolumeRecycled Volume recycled",
			},
		},
		{
			name: "Recycle: a volume type without recycler is Failed",
			pvs: []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimRecycle, func(pv *v1.PersistentVolume) {
				pv.Spec.HostPath = nil
				pv.Spec.CSI = &v1.CSIPersistentVolumeSource{Driver: "x", VolumeHandle: "h"}
			})},
			wantPVs:    []string{"pv-1 Failed claim=default/c1(uid-c1) [bound-by-controller] reason=VolumeFailedRecycle"},
			wantEvents: []string{"pv/pv-1 Warning VolumeFailedRecycle No recycler plugin found for the volume!"},
		},
		{
			name:       "Recycle: a volume still used by a pod waits",
			pvs:        []*v1.PersistentVolume{boundPV(v1.PersistentVolumeReclaimRecycle)},
			pods:       []*v1.Pod{scheduledPod("web-0", "node-1", "c1")},
			wantPVs:    []string{"pv-1 Released claim=default/c1(uid-c1) [bound-by-controller]"},
			wantEvents: []string{"pv/pv-1 Normal VolumeFailedRecycle Volume is used by pods: default/web-0"},
		},
		{
			name:       "an unknown reclaim policy fails the volume",
			pvs:        []*v1.PersistentVolume{boundPV("Bogus")},
			wantPVs:    []string{"pv-1 Failed claim=default/c1(uid-c1) [bound-by-controller] reason=VolumeUnknownReclaimPolicy"},
			wantEvents: []string{"pv/pv-1 Warning VolumeUnknownReclaimPolicy Volume has unrecognized PersistentVolumeReclaimPolicy"},
		},
		{
			name: "a volume provisioned for a claim bound elsewhere is deleted",
			pvs: []*v1.PersistentVolume{
				boundPV(v1.PersistentVolumeReclaimDelete, provisioned),
				newPV("pv-2", "1Gi", pvClaim("c1", "uid-c1"), pvPhase(v1.VolumeBound)),
			},
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-2"))},
			provisioner: func() *fakeProvisioner { return newFakeProvisioner("fake.io/prov") },
			wantPVs:     []string{"pv-2 Bound claim=default/c1(uid-c1)"},
			wantPVCs:    []string{"c1 Bound volume=pv-2 [bind-completed,bound-by-controller]"},
		},
		{
			name: "deleting a bound claim releases its volume",
			pvs:  []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvPolicy(v1.PersistentVolumeReclaimRetain))},
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi")},
			act: func(h *harness) {
				h.api.userDelete(false, "default/c1")
			},
			wantPVs: []string{"pv-1 Released claim=default/c1(uid-c1) [bound-by-controller]"},
		},
	}
}

func provisioningScenarios() []scenario {
	fast := newClass("fast", "fake.io/prov", immediate)
	prov := func() *fakeProvisioner { return newFakeProvisioner("fake.io/prov") }
	const provisionedPV = "pvc-uid-c1 Bound claim=default/c1(uid-c1) [bound-by-controller,provisioned-by=fake.io/prov]"
	const provisionedPVC = "c1 Bound volume=pvc-uid-c1 cap=1Gi [beta-storage-provisioner=fake.io/prov,bind-completed,bound-by-controller,storage-provisioner=fake.io/prov] class=fast"
	const succeeded = "pvc/default/c1 Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-c1 using fake.io/prov"
	return []scenario{
		{
			name:        "an in-process provisioner provisions and the claim binds",
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"))},
			classes:     []*storagev1.StorageClass{fast},
			provisioner: prov,
			wantPVs:     []string{provisionedPV},
			wantPVCs:    []string{provisionedPVC},
			wantEvents:  []string{succeeded},
		},
		{
			name:        "a matching volume is used rather than provisioned",
			pvs:         []*v1.PersistentVolume{newPV("pv-1", "2Gi", pvClass("fast"))},
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"))},
			classes:     []*storagev1.StorageClass{fast},
			provisioner: prov,
			wantPVs:     []string{"pv-1 Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs:    []string{"c1 Bound volume=pv-1 cap=2Gi [bind-completed,bound-by-controller] class=fast"},
		},
		{
			name:     "an external provisioner gets the annotations and an event",
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("ext"))},
			classes:  []*storagev1.StorageClass{newClass("ext", "csi.example.com", immediate)},
			wantPVCs: []string{"c1 Pending [beta-storage-provisioner=csi.example.com,storage-provisioner=csi.example.com] class=ext"},
			wantEvents: []string{"pvc/default/c1 Normal ExternalProvisioning Waiting for a volume to be created either by the external provisioner 'csi.example.com' " +
				"or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."},
		},
		{
			name:       "a class that does not exist leaves the claim Pending with an event naming it",
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("gold"))},
			wantPVCs:   []string{"c1 Pending class=gold"},
			wantEvents: []string{`pvc/default/c1 Warning ProvisioningFailed storageclass.storage.k8s.io "gold" not found`},
		},
		{
			name:    "a failed provisioning is reported and the scheduler asked again",
			pvcs:    []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"), pvcAnn(storagehelpers.AnnSelectedNode, "node-1"))},
			classes: []*storagev1.StorageClass{fast},
			nodes:   []string{"node-1"},
			provisioner: func() *fakeProvisioner {
				p := prov()
				p.failProv = errBoom
				return p
			},
			wantPVCs: []string{"c1 Pending [beta-storage-provisioner=fake.io/prov,storage-provisioner=fake.io/prov] class=fast"},
			wantEvents: []string{
				`pvc/default/c1 Warning ProvisioningFailed Failed to provision volume with StorageClass "fast": boom`,
			},
		},
		{
			name:        "a selected node that does not exist is reported",
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"), pvcAnn(storagehelpers.AnnSelectedNode, "node-1"))},
			classes:     []*storagev1.StorageClass{fast},
			provisioner: prov,
			wantPVCs:    []string{"c1 Pending [beta-storage-provisioner=fake.io/prov,selected-node=node-1,storage-provisioner=fake.io/prov] class=fast"},
			wantEvents: []string{
				`pvc/default/c1 Warning ProvisioningFailed Failed to get target node: nodes "node-1" not found`,
			},
		},
		{
			name:        "a delayed-binding claim is provisioned once the scheduler chose a node",
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"))},
			classes:     []*storagev1.StorageClass{newClass("fast", "fake.io/prov", wffc)},
			nodes:       []string{"node-1"},
			provisioner: prov,
			act: func(h *harness) {
				h.api.mu.Lock()
				pvc := h.api.pvcs["default/c1"]
				metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, storagehelpers.AnnSelectedNode, "node-1")
				pvc.ResourceVersion = h.api.nextRV()
				h.api.events = append(h.api.events, watchEvent{"MODIFIED", pvc.DeepCopy()})
				h.api.mu.Unlock()
			},
			wantPVs:  []string{provisionedPV},
			wantPVCs: []string{"c1 Bound volume=pvc-uid-c1 cap=1Gi [beta-storage-provisioner=fake.io/prov,bind-completed,bound-by-controller,selected-node=node-1,storage-provisioner=fake.io/prov] class=fast"},
			wantEvents: []string{
				`pvc/default/c1 Normal WaitForFirstConsumer ` + msgWaitForConsumer,
				succeeded,
			},
		},
		{
			name: "a claim without class gets the default class, then a volume",
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcNoClass())},
			classes: []*storagev1.StorageClass{
				newClass("fast", "fake.io/prov", immediate, classDefault),
			},
			provisioner: prov,
			wantPVs:     []string{provisionedPV},
			wantPVCs:    []string{provisionedPVC},
			wantEvents:  []string{succeeded},
		},
		{
			name:        "dynamic provisioning can be turned off",
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"))},
			classes:     []*storagev1.StorageClass{fast},
			provisioner: prov,
			cfg:         Config{DisableDynamicProvisioning: true},
			wantPVCs:    []string{"c1 Pending class=fast"},
		},
		{
			name: "the provisioned volume of a deleted claim is released and deleted",
			pvcs: []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("fast"))},
			classes: []*storagev1.StorageClass{
				newClass("fast", "fake.io/prov", immediate),
			},
			provisioner: prov,
			act: func(h *harness) {
				h.api.userDelete(false, "default/c1")
			},
			wantEvents: []string{succeeded},
		},
	}
}

var _ = ptr.To[int]
