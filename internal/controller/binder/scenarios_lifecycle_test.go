package binder

// Table rows: volume sync, reclaim, provisioning.

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

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
