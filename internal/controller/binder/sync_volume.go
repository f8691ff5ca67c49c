package binder

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

// syncVolumeKey syncs one volume from the volume queue, under its lock.
func (c *Controller) syncVolumeKey(ctx context.Context, name string) error {
	unlock := c.locks.Lock(volumeLockKey(name))
	defer unlock()
	volume := c.store.volume(name)
	if volume == nil {
		return nil
	}
	return c.syncVolume(ctx, volume)
}

// syncVolume drives a volume's phase from its claimRef and the claim it
// names.
//
// First the in-tree finalizer is made to follow the reclaim policy
// (reconcileFinalizers).
//
//	claimRef         claim                              action
//	---------------  ---------------------------------  -----------------------------------------
//	none             -                                  Available
//	name, no UID     -                                  Available (pre-bound; claim sync binds)
//	with UID         gone, or another UID (confirmed    Released, then reclaim (reclaim.go):
//	                 by the API unless already          Retain: stays; Delete: backend, then PV;
//	                 Released or Failed)                Recycle: scrub, then Available
//	with UID         not bound yet (volumeName "")      claim sync finishes the bind
//	with UID         bound to this volume               Bound
//	with UID         bound to another volume            provisioned for it and Delete: Released,
//	                                                    delete; bound by controller: unbind ->
//	                                                    Available; pre-bound by creator: keep the
//	                                                    name, drop the UID -> Available
func (c *Controller) syncVolume(ctx context.Context, volume *v1.PersistentVolume) error {
	volume, err := c.reconcileFinalizers(ctx, volume)
	if err != nil {
		return err
	}
	ref := volume.Spec.ClaimRef
	if ref == nil {
		_, err := c.updateVolumePhase(ctx, volume, v1.VolumeAvailable, "", "")
		return err
	}
	if ref.UID == "" {
		if _, err := c.updateVolumePhase(ctx, volume, v1.VolumeAvailable, "", ""); err != nil {
			return err
		}
		// The claim it names may be waiting for it already; upstream
		// leaves that to the resync.
		c.claimQueue.Add(claimRefKey(ref))
		return nil
	}
	claim, err := c.claimOfVolume(ctx, volume)
	if err != nil {
		return err
	}
	switch {
	case claim == nil:
		return c.releaseAndReclaim(ctx, volume)
	case claim.Spec.VolumeName == "":
		if storagehelpers.CheckVolumeModeMismatches(&claim.Spec, &volume.Spec) {
			c.recorder.Event(volume, v1.EventTypeWarning, reasonVolumeMismatch,
				fmt.Sprintf("Cannot bind PersistentVolume to requested PersistentVolumeClaim %q due to incompatible volumeMode.", claim.Name))
			c.recorder.Event(claim, v1.EventTypeWarning, reasonVolumeMismatch,
				fmt.Sprintf("Cannot bind PersistentVolume %q to requested PersistentVolumeClaim due to incompatible volumeMode.", volume.Name))
			return nil
		}
		// Bound by this controller (or the scheduler, or a provisioner)
		// to a claim not bound yet: the claim's sync finishes it.
		c.claimQueue.Add(claimKey(claim))
		return nil
	case claim.Spec.VolumeName == volume.Name:
		if claim.Status.Phase != v1.ClaimBound {
			// A Lost claim whose volume came back, or a bind to finish.
			c.claimQueue.Add(claimKey(claim))
		}
		_, err := c.updateVolumePhase(ctx, volume, v1.VolumeBound, "", "")
		return err
	case metav1.HasAnnotation(volume.ObjectMeta, storagehelpers.AnnDynamicallyProvisioned) &&
		volume.Spec.PersistentVolumeReclaimPolicy == v1.PersistentVolumeReclaimDelete:
		// Provisioned for a claim that got another volume: not needed.
		return c.releaseAndReclaim(ctx, volume)
	default:
		return c.unbindVolume(ctx, volume)
	}
}

// releaseAndReclaim marks a volume whose claim is gone Released (a Failed
// one stays Failed) and applies its reclaim policy.
func (c *Controller) releaseAndReclaim(ctx context.Context, volume *v1.PersistentVolume) error {
	if volume.Status.Phase != v1.VolumeFailed {
		var err error
		if volume, err = c.updateVolumePhase(ctx, volume, v1.VolumeReleased, "", ""); err != nil {
			return err
		}
	}
	return c.reclaimVolume(ctx, volume)
}

// claimOfVolume returns the claim a volume's claimRef names, nil when it
// does not exist (or is another claim of the same name). Before a volume
// is released, absence from the store is confirmed with the API: a claim
// created by someone else may just not have reached this controller.
func (c *Controller) claimOfVolume(ctx context.Context, volume *v1.PersistentVolume) (*v1.PersistentVolumeClaim, error) {
	ref := volume.Spec.ClaimRef
	claim := c.store.claim(claimRefKey(ref))
	if claim != nil && claim.UID == ref.UID {
		return claim, nil
	}
	if volume.Status.Phase == v1.VolumeReleased || volume.Status.Phase == v1.VolumeFailed {
		return nil, nil
	}
	live, err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading claim %s of volume %s: %w", claimRefKey(ref), volume.Name, err)
	}
	c.onClaim(live)
	if live.UID != ref.UID {
		return nil, nil
	}
	return live, nil
}

// inTreeFinalizers returns the finalizers a volume should carry, and
// whether they differ from its own, as upstream's modifyDeletionFinalizers
// decides: only a volume provisioned by an in-tree (kubernetes.io/*)
// provisioner carries kubernetes.io/pv-controller, while its reclaim
// policy is Delete; such a volume never carries the external
// provisioner's finalizer. Other volumes are left alone: a CSI
// provisioner manages its own finalizer.
func inTreeFinalizers(volume *v1.PersistentVolume) ([]string, bool) {
	provisioner, ok := volume.Annotations[storagehelpers.AnnDynamicallyProvisioned]
	if !ok || !strings.HasPrefix(provisioner, "kubernetes.io/") {
		return volume.Finalizers, false
	}
	out := slices.Clone(volume.Finalizers)
	has := slices.Contains(out, storagehelpers.PVDeletionInTreeProtectionFinalizer)
	changed := false
	switch policy := volume.Spec.PersistentVolumeReclaimPolicy; {
	case policy == v1.PersistentVolumeReclaimDelete && !has:
		out = append(out, storagehelpers.PVDeletionInTreeProtectionFinalizer)
		changed = true
	case (policy == v1.PersistentVolumeReclaimRetain || policy == v1.PersistentVolumeReclaimRecycle) && has:
		out = slices.DeleteFunc(out, func(f string) bool { return f == storagehelpers.PVDeletionInTreeProtectionFinalizer })
		changed = true
	}
	if slices.Contains(out, storagehelpers.PVDeletionProtectionFinalizer) {
		out = slices.DeleteFunc(out, func(f string) bool { return f == storagehelpers.PVDeletionProtectionFinalizer })
		changed = true
	}
	return out, changed
}

// reconcileFinalizers writes the finalizers inTreeFinalizers asks for,
// on every sync of the volume, as upstream: a policy an admin changed
// from Delete to Retain lets the volume be deleted.
func (c *Controller) reconcileFinalizers(ctx context.Context, volume *v1.PersistentVolume) (*v1.PersistentVolume, error) {
	fins, changed := inTreeFinalizers(volume)
	if !changed {
		return volume, nil
	}
	clone := volume.DeepCopy()
	clone.Finalizers = fins
	return c.writeVolume(ctx, clone)
}
