package nodevolumelimits

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/component-helpers/storage/ephemeral"
)

// ReasonMaxVolumeCountExceeded is upstream's reason, word for word.
const ReasonMaxVolumeCountExceeded = "node(s) exceed max volume count"

// volumes maps a volume's unique name to its CSI driver.
type volumes map[string]string

// uniqueName names a CSI volume once per driver and handle.
func uniqueName(driver, handle string) string { return driver + "/" + handle }

// podClaim is a claim a pod's volume refers to.
type podClaim struct {
	name      string
	ephemeral bool // a generic ephemeral volume's claim
}

// podClaims are the claims of the pod's volumes that count: claim
// volumes and generic ephemeral volumes. CSI inline volumes do not.
func podClaims(pod *v1.Pod) []podClaim {
	var out []podClaim
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		switch {
		case vol.PersistentVolumeClaim != nil:
			out = append(out, podClaim{name: vol.PersistentVolumeClaim.ClaimName})
		case vol.Ephemeral != nil:
			out = append(out, podClaim{name: ephemeral.VolumeClaimName(pod, vol), ephemeral: true})
		}
	}
	return out
}

// countsVolumes reports whether a pod has any volume this plugin counts.
func countsVolumes(pod *v1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.Volumes, func(v v1.Volume) bool {
		return v.PersistentVolumeClaim != nil || v.Ephemeral != nil
	})
}

// claimVolume is the CSI driver and volume handle a claim stands for:
// its PV's CSI source when bound (pv may be nil when the PV is not
// known yet), else its class's provisioner with a handle made from
// prefix and the claim (an unbound claim is one future volume). Empty
// strings mean the claim is not a CSI volume.
func claimVolume(claim *v1.PersistentVolumeClaim, pv *v1.PersistentVolume, class *storagev1.StorageClass, prefix string) (driver, handle string) {
	if claim.Spec.VolumeName != "" && pv != nil {
		if pv.Spec.CSI == nil {
			return "", ""
		}
		return pv.Spec.CSI.Driver, pv.Spec.CSI.VolumeHandle
	}
	if class == nil {
		return "", ""
	}
	return class.Provisioner, prefix + "-" + claim.Namespace + "/" + claim.Name
}

// nodeLimits are the CSINode's allocatable counts per driver; a nil
// CSINode has none.
func nodeLimits(csiNode *storagev1.CSINode) map[string]int64 {
	out := map[string]int64{}
	if csiNode == nil {
		return out
	}
	for _, d := range csiNode.Spec.Drivers {
		if d.Allocatable != nil && d.Allocatable.Count != nil {
			out[d.Name] = int64(*d.Allocatable.Count)
		}
	}
	return out
}

// attachmentVolume is the volume a VolumeAttachment of the node stands
// for, or ok false when it is not one that counts (no attacher, not a
// PV's, or a PV that is unknown or not CSI).
func attachmentVolume(va *storagev1.VolumeAttachment, node string, pv *v1.PersistentVolume) (name, driver string, ok bool) {
	if va.Spec.NodeName != node || va.Spec.Attacher == "" || va.Spec.Source.PersistentVolumeName == nil || pv == nil || pv.Spec.CSI == nil {
		return "", "", false
	}
	return uniqueName(va.Spec.Attacher, pv.Spec.CSI.VolumeHandle), va.Spec.Attacher, true
}

// exceeds reports whether adding the pod's new volumes to a node with
// the given volumes (its pods') and attachments breaks a driver's limit.
// Volumes already on the node are not new; attachments count unless a
// pod's volume already counts them.
func exceeds(newVols, onNode, attached volumes, limits map[string]int64) bool {
	if len(newVols) == 0 || len(limits) == 0 {
		return false
	}
	count := map[string]int{}
	for _, driver := range onNode {
		count[driver]++
	}
	for name, driver := range attached {
		if _, ok := onNode[name]; !ok {
			count[driver]++
		}
	}
	adding := map[string]int{}
	for name, driver := range newVols {
		if _, ok := onNode[name]; !ok {
			adding[driver]++
		}
	}
	for driver, n := range adding {
		if limit, ok := limits[driver]; ok && int64(count[driver]+n) > limit {
			return true
		}
	}
	return false
}

// limitRaised reports whether a CSINode update raised some driver's
// count (a new driver with a count raises it from zero).
func limitRaised(old, cur *storagev1.CSINode) bool {
	before := nodeLimits(old)
	for driver, n := range nodeLimits(cur) {
		if n > before[driver] {
			return true
		}
	}
	return false
}
