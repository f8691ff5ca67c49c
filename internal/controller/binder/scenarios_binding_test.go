package binder

// Table rows: matching, pre-binding, resuming binds, Lost claims.

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

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
