package binder

// Table rows where volplane once departed from upstream's PV controller
// without a reason (issue 21): the in-tree finalizer, deleting claims,
// claims whose volume names them without a UID.

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

func fidelityScenarios() []scenario {
	const inTree = "kubernetes.io/fake"
	bound := func(name string, policy v1.PersistentVolumeReclaimPolicy, provisioner string, fin bool) *v1.PersistentVolume {
		pv := newPV(name, "1Gi", pvClaim("c-"+name, types.UID("uid-c-"+name)), pvPhase(v1.VolumeBound),
			pvAnn(storagehelpers.AnnBoundByController, "yes"), pvPolicy(policy),
			pvAnn(storagehelpers.AnnDynamicallyProvisioned, provisioner))
		if fin {
			pv.Finalizers = []string{storagehelpers.PVDeletionInTreeProtectionFinalizer}
		}
		return pv
	}
	claimOf := func(pv string) *v1.PersistentVolumeClaim { return newPVC("c-"+pv, "1Gi", pvcBound(pv)) }
	inTreeProv := func() *fakeProvisioner { return newFakeProvisioner(inTree) }
	return []scenario{
		{
			name: "the in-tree finalizer follows the reclaim policy, on in-tree provisioners' volumes only",
			pvs: []*v1.PersistentVolume{
				bound("pv-delete", v1.PersistentVolumeReclaimDelete, inTree, false),
				bound("pv-retain", v1.PersistentVolumeReclaimRetain, inTree, true),
				bound("pv-recycle", v1.PersistentVolumeReclaimRecycle, inTree, true),
				bound("pv-csi", v1.PersistentVolumeReclaimDelete, "csi.example.com", false),
			},
			pvcs: []*v1.PersistentVolumeClaim{claimOf("pv-delete"), claimOf("pv-retain"), claimOf("pv-recycle"), claimOf("pv-csi")},
			wantPVs: []string{
				"pv-csi Bound claim=default/c-pv-csi(uid-c-pv-csi) [bound-by-controller,provisioned-by=csi.example.com]",
				"pv-delete Bound claim=default/c-pv-delete(uid-c-pv-delete) [bound-by-controller,provisioned-by=kubernetes.io/fake] fin=pv-controller",
				"pv-recycle Bound claim=default/c-pv-recycle(uid-c-pv-recycle) [bound-by-controller,provisioned-by=kubernetes.io/fake]",
				"pv-retain Bound claim=default/c-pv-retain(uid-c-pv-retain) [bound-by-controller,provisioned-by=kubernetes.io/fake]",
			},
			wantPVCs: []string{
				"c-pv-csi Bound volume=pv-csi [bind-completed,bound-by-controller]",
				"c-pv-delete Bound volume=pv-delete [bind-completed,bound-by-controller]",
				"c-pv-recycle Bound volume=pv-recycle [bind-completed,bound-by-controller]",
				"c-pv-retain Bound volume=pv-retain [bind-completed,bound-by-controller]",
			},
		},
		{
			name: "a volume whose policy changed from Delete to Retain can be deleted",
			pvs:  []*v1.PersistentVolume{bound("pv-1", v1.PersistentVolumeReclaimDelete, inTree, true)},
			pvcs: []*v1.PersistentVolumeClaim{claimOf("pv-1")},
			act: func(h *harness) {
				h.api.userUpdateVolume("pv-1", func(pv *v1.PersistentVolume) {
					pv.Spec.PersistentVolumeReclaimPolicy = v1.PersistentVolumeReclaimRetain
				})
				h.run()
				h.api.userDelete(true, "pv-1")
			},
			wantPVCs:   []string{"c-pv-1 Lost volume=pv-1 [bind-completed,bound-by-controller]"},
			wantEvents: []string{"pvc/default/c-pv-1 Warning ClaimLost " + msgClaimLostVolume},
		},
		{
			name:        "an in-tree provisioner's Delete volume gets the in-tree finalizer",
			pvcs:        []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcClass("intree"))},
			classes:     []*storagev1.StorageClass{newClass("intree", inTree, immediate)},
			provisioner: inTreeProv,
			wantPVs:     []string{"pvc-uid-c1 Bound claim=default/c1(uid-c1) [bound-by-controller,provisioned-by=kubernetes.io/fake] fin=pv-controller"},
			wantPVCs:    []string{"c1 Bound volume=pvc-uid-c1 cap=1Gi [beta-storage-provisioner=kubernetes.io/fake,bind-completed,bound-by-controller,storage-provisioner=kubernetes.io/fake] class=intree"},
			wantEvents:  []string{"pvc/default/c1 Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-c1 using kubernetes.io/fake"},
		},
		{
			name:     "a claim being deleted is bound, as upstream does (a pod using it may start)",
			pvs:      []*v1.PersistentVolume{newPV("pv-1", "1Gi")},
			pvcs:     []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcDeleting())},
			wantPVs:  []string{"pv-1 Bound claim=default/c1(uid-c1) [bound-by-controller]"},
			wantPVCs: []string{"c1 Bound volume=pv-1 cap=1Gi [bind-completed,bound-by-controller] deleting"},
		},
		{
			name:       "a bound claim whose volume names it without its UID is Lost (misbound), as upstream",
			pvs:        []*v1.PersistentVolume{newPV("pv-1", "1Gi", pvClaim("c1", ""))},
			pvcs:       []*v1.PersistentVolumeClaim{newPVC("c1", "1Gi", pvcBound("pv-1"))},
			wantPVs:    []string{"pv-1 Available claim=default/c1"},
			wantPVCs:   []string{"c1 Lost volume=pv-1 [bind-completed,bound-by-controller]"},
			wantEvents: []string{"pvc/default/c1 Warning ClaimMisbound " + msgClaimMisbound},
		},
	}
}

// TestOnlyAvailableVolumesAreMatched: upstream offers claims only
// Available volumes (pre-bound ones aside); a volume with no phase yet or
// Pending is made Available by its own sync first.
func TestOnlyAvailableVolumesAreMatched(t *testing.T) {
	for _, tc := range []struct {
		phase v1.PersistentVolumePhase
		want  bool
	}{
		{"", false},
		{v1.VolumePending, false},
		{v1.VolumeAvailable, true},
		{v1.VolumeReleased, false},
		{v1.VolumeFailed, false},
	} {
		s := newStore()
		s.putVolume(newPV("pv-1", "1Gi", pvPhase(tc.phase)), false)
		if got := s.index.Has("pv-1"); got != tc.want {
			t.Errorf("phase %q: indexed %v, want %v", tc.phase, got, tc.want)
		}
	}
}

// TestFailedDecisionRequeuedOnce: a bind decision that fails is retried
// through the claim's queue only; the bind queue does not requeue it too.
func TestFailedDecisionRequeuedOnce(t *testing.T) {
	api := newFakeAPI()
	api.add(newPVC("c1", "1Gi"))
	h := newHarness(t, api, setup{})
	h.start()
	c := h.ctrl
	c.batcher.decide("default/c1", "pv-gone")
	cq, bq := h.queues()[0], h.queues()[2]
	c.process(h.ctx, bq, "bind", "default/c1", c.processDecision)
	if len(bq.retry) != 0 {
		t.Errorf("bind queue requeued %v", bq.retry)
	}
	if !cq.retry["default/c1"] {
		t.Errorf("claim not requeued: %v", cq.retry)
	}
}
