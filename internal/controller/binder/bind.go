package binder

import (
	"context"
	"fmt"
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/logging"
	"volplane/internal/volumematch"
)

// annPreResizeCapacity is set by the resizer on a PV whose filesystem
// still has to grow; a claim becoming Bound reports that capacity.
const annPreResizeCapacity = "volume.alpha.kubernetes.io/pre-resize-capacity"

// Every write goes through these helpers: they count the write and store
// the API's answer, so that the next sync sees what was written even
// before the informer delivers it.

func (c *Controller) countWrite(resource, verb string, err error) {
	c.metrics.writes.WithLabelValues(resource, verb, result(err)).Inc()
}

// storeWrittenVolume stores the API's answer to a volume write; a volume
// the write made bindable wakes the claims waiting in its group.
func (c *Controller) storeWrittenVolume(pv *v1.PersistentVolume) {
	if _, arrived := c.store.putVolume(pv, true); arrived {
		c.batcher.volumeArrived(volumematch.VolumeGroup(pv), c.now())
	}
}

func (c *Controller) writeVolume(ctx context.Context, pv *v1.PersistentVolume) (*v1.PersistentVolume, error) {
	out, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	c.countWrite("persistentvolumes", "update", err)
	if err != nil {
		return nil, fmt.Errorf("updating volume %s: %w", pv.Name, err)
	}
	c.storeWrittenVolume(out)
	return out, nil
}

func (c *Controller) writeVolumeStatus(ctx context.Context, pv *v1.PersistentVolume) (*v1.PersistentVolume, error) {
	out, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{})
	c.countWrite("persistentvolumes", "update-status", err)
	if err != nil {
		return nil, fmt.Errorf("updating status of volume %s: %w", pv.Name, err)
	}
	c.storeWrittenVolume(out)
	return out, nil
}

func (c *Controller) writeClaim(ctx context.Context, claim *v1.PersistentVolumeClaim) (*v1.PersistentVolumeClaim, error) {
	out, err := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Update(ctx, claim, metav1.UpdateOptions{})
	c.countWrite("persistentvolumeclaims", "update", err)
	if err != nil {
		return nil, fmt.Errorf("updating claim %s: %w", claimKey(claim), err)
	}
	c.store.putClaim(out, true, c.now())
	return out, nil
}

func (c *Controller) writeClaimStatus(ctx context.Context, claim *v1.PersistentVolumeClaim) (*v1.PersistentVolumeClaim, error) {
	out, err := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	c.countWrite("persistentvolumeclaims", "update-status", err)
	if err != nil {
		return nil, fmt.Errorf("updating status of claim %s: %w", claimKey(claim), err)
	}
	c.store.putClaim(out, true, c.now())
	return out, nil
}

// bind makes volume and claim Bound to each other: volume spec (claimRef),
// volume status, claim spec (volumeName and annotations), claim status, in
// that order, as upstream. Each step writes only if something is missing,
// so bind both starts a bind and finishes one that a crash or a conflict
// interrupted. The caller holds the volume's and the claim's locks and
// passes their newest versions.
func (c *Controller) bind(ctx context.Context, volume *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) error {
	log := logging.FromContext(ctx)
	var err error
	if volume, err = c.bindVolumeToClaim(ctx, volume, claim); err != nil {
		return err
	}
	if volume, err = c.updateVolumePhase(ctx, volume, v1.VolumeBound, "", ""); err != nil {
		return err
	}
	if claim, err = c.bindClaimToVolume(ctx, claim, volume); err != nil {
		return err
	}
	wasBound := claim.Status.Phase == v1.ClaimBound
	if claim, err = c.updateClaimStatus(ctx, claim, v1.ClaimBound, volume); err != nil {
		return err
	}
	if !wasBound {
		c.metrics.binds.Inc()
		if t, ok := c.store.takeFirstSeen(claimKey(claim)); ok {
			c.metrics.bindDuration.Observe(c.now().Sub(t).Seconds())
		}
		log.Debug("claim bound", "claim", claimKey(claim), "volume", volume.Name)
	}
	return nil
}

// bindVolumeToClaim writes the volume's claimRef (with the claim's UID)
// and, unless the volume was pre-bound to this claim by its creator, the
// bound-by-controller annotation.
func (c *Controller) bindVolumeToClaim(ctx context.Context, volume *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) (*v1.PersistentVolume, error) {
	clone, dirty, err := storagehelpers.GetBindVolumeToClaim(volume, claim)
	if err != nil {
		return nil, fmt.Errorf("binding volume %s to claim %s: %w", volume.Name, claimKey(claim), err)
	}
	if !dirty {
		return volume, nil
	}
	return c.writeVolume(ctx, clone)
}

// bindClaimToVolume writes the claim's volumeName (with the
// bound-by-controller annotation when the controller chose the volume)
// and the bind-completed annotation.
func (c *Controller) bindClaimToVolume(ctx context.Context, claim *v1.PersistentVolumeClaim, volume *v1.PersistentVolume) (*v1.PersistentVolumeClaim, error) {
	dirty := false
	clone := claim.DeepCopy()
	if clone.Spec.VolumeName != volume.Name {
		clone.Spec.VolumeName = volume.Name
		if !metav1.HasAnnotation(clone.ObjectMeta, storagehelpers.AnnBoundByController) {
			metav1.SetMetaDataAnnotation(&clone.ObjectMeta, storagehelpers.AnnBoundByController, "yes")
		}
		dirty = true
	}
	if !metav1.HasAnnotation(clone.ObjectMeta, storagehelpers.AnnBindCompleted) {
		metav1.SetMetaDataAnnotation(&clone.ObjectMeta, storagehelpers.AnnBindCompleted, "yes")
		dirty = true
	}
	if !dirty {
		return claim, nil
	}
	return c.writeClaim(ctx, clone)
}

// updateVolumePhase writes phase (with reason and message, and
// lastPhaseTransitionTime) when it differs from the volume's.
func (c *Controller) updateVolumePhase(ctx context.Context, volume *v1.PersistentVolume, phase v1.PersistentVolumePhase, reason, message string) (*v1.PersistentVolume, error) {
	if volume.Status.Phase == phase {
		return volume, nil
	}
	clone := volume.DeepCopy()
	clone.Status.Phase = phase
	clone.Status.Reason = reason
	clone.Status.Message = message
	now := metav1.NewTime(c.now())
	clone.Status.LastPhaseTransitionTime = &now
	return c.writeVolumeStatus(ctx, clone)
}

// updateVolumePhaseWithEvent is updateVolumePhase that also emits an
// event, only when the phase changes.
func (c *Controller) updateVolumePhaseWithEvent(ctx context.Context, volume *v1.PersistentVolume, phase v1.PersistentVolumePhase, eventtype, reason, message string) (*v1.PersistentVolume, error) {
	if volume.Status.Phase == phase {
		return volume, nil
	}
	out, err := c.updateVolumePhase(ctx, volume, phase, reason, message)
	if err != nil {
		return nil, err
	}
	c.recorder.Event(out, eventtype, reason, message)
	return out, nil
}

// updateClaimStatus writes the claim's phase, and from volume its access
// modes and, when it becomes Bound, its capacity; without a volume those
// are cleared.
func (c *Controller) updateClaimStatus(ctx context.Context, claim *v1.PersistentVolumeClaim, phase v1.PersistentVolumeClaimPhase, volume *v1.PersistentVolume) (*v1.PersistentVolumeClaim, error) {
	clone := claim.DeepCopy()
	dirty := false
	if claim.Status.Phase != phase {
		clone.Status.Phase = phase
		dirty = true
	}
	if volume == nil {
		if clone.Status.AccessModes != nil || clone.Status.Capacity != nil || clone.Status.CurrentVolumeAttributesClassName != nil {
			clone.Status.AccessModes = nil
			clone.Status.Capacity = nil
			clone.Status.CurrentVolumeAttributesClassName = nil
			dirty = true
		}
	} else {
		if !reflect.DeepEqual(claim.Status.AccessModes, volume.Spec.AccessModes) {
			clone.Status.AccessModes = volume.Spec.AccessModes
			dirty = true
		}
		// Capacity only when the claim becomes Bound: a difference later
		// is the resizer's business.
		if claim.Status.Phase != phase {
			volCap, ok := volume.Spec.Capacity[v1.ResourceStorage]
			if !ok {
				return nil, fmt.Errorf("volume %s has no storage capacity", volume.Name)
			}
			if s, ok := volume.Annotations[annPreResizeCapacity]; ok {
				if q, err := resource.ParseQuantity(s); err == nil {
					volCap = q
				}
			}
			claimCap, ok := claim.Status.Capacity[v1.ResourceStorage]
			if !ok || volCap.Cmp(claimCap) != 0 {
				clone.Status.Capacity = v1.ResourceList{v1.ResourceStorage: volCap}
				dirty = true
			}
			if claim.Status.Phase == v1.ClaimPending && phase == v1.ClaimBound &&
				!reflect.DeepEqual(claim.Status.CurrentVolumeAttributesClassName, volume.Spec.VolumeAttributesClassName) {
				clone.Status.CurrentVolumeAttributesClassName = volume.Spec.VolumeAttributesClassName
				dirty = true
			}
		}
	}
	if !dirty {
		return claim, nil
	}
	return c.writeClaimStatus(ctx, clone)
}

// updateClaimStatusWithEvent is updateClaimStatus that also emits an
// event, only when the phase changes.
func (c *Controller) updateClaimStatusWithEvent(ctx context.Context, claim *v1.PersistentVolumeClaim, phase v1.PersistentVolumeClaimPhase, volume *v1.PersistentVolume, eventtype, reason, message string) (*v1.PersistentVolumeClaim, error) {
	if claim.Status.Phase == phase {
		return claim, nil
	}
	out, err := c.updateClaimStatus(ctx, claim, phase, volume)
	if err != nil {
		return nil, err
	}
	c.recorder.Event(out, eventtype, reason, message)
	return out, nil
}

// unbindVolume undoes a binding of the volume: the controller's own
// binding entirely, a creator's pre-binding only down to the claim name
// (the UID goes, the reservation stays). The volume becomes Available.
func (c *Controller) unbindVolume(ctx context.Context, volume *v1.PersistentVolume) error {
	clone := volume.DeepCopy()
	if metav1.HasAnnotation(volume.ObjectMeta, storagehelpers.AnnBoundByController) {
		clone.Spec.ClaimRef = nil
		delete(clone.Annotations, storagehelpers.AnnBoundByController)
		if len(clone.Annotations) == 0 {
			clone.Annotations = nil
		}
	} else if clone.Spec.ClaimRef != nil {
		clone.Spec.ClaimRef.UID = ""
		clone.Spec.ClaimRef.ResourceVersion = ""
	}
	out := volume
	if !reflect.DeepEqual(clone.Spec.ClaimRef, volume.Spec.ClaimRef) || !reflect.DeepEqual(clone.Annotations, volume.Annotations) {
		var err error
		if out, err = c.writeVolume(ctx, clone); err != nil {
			return err
		}
	}
	_, err := c.updateVolumePhase(ctx, out, v1.VolumeAvailable, "", "")
	return err
}
