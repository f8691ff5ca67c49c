package provisioner

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"volplane/internal/csi/kube"
	"volplane/internal/logging"
)

// syncVolume deletes the backend of a released volume this provisioner
// created:
//
//	volume                                     action
//	-----------------------------------------  ----------------------------------------------
//	not ours (provisioned-by, csi driver)      nothing
//	Released, reclaim Delete, still attached   VolumeFailedDelete "... is still attached to node N",
//	(driver with ControllerPublish)            retry with backoff
//	Released, reclaim Delete                   DeleteVolume, then finalizer off, PV deleted;
//	                                           failure: VolumeFailedDelete, retry with backoff
//	being deleted, reclaim not Delete          finalizer off (nothing to delete)
//	being deleted without our finalizer        nothing (the backend is gone: see below)
//	otherwise                                  nothing
//
// The finalizer comes off only after DeleteVolume succeeded, and the PV
// is deleted after it; the API keeps the PV, Released, while another
// finalizer (kubernetes.io/pv-protection) holds it. So a PV being deleted
// without this provisioner's finalizer has no backend left: the sync that
// the finalizer's removal queued called DeleteVolume a second time before
// this rule (upstream's external-provisioner ignores such a PV too).
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.provisionedByUs(pv) || backendDeleted(pv) {
		return nil
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete {
		if pv.DeletionTimestamp != nil {
			_, err := c.removeFinalizer(ctx, pv)
			return err
		}
		return nil
	}
	if pv.Status.Phase != v1.VolumeReleased {
		return nil
	}
	// Act on what the API has now: the PV controller may have bound it
	// again (a recreated claim) or deleted it since the cache saw it.
	pv, err = c.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading volume %s: %w", name, err)
	}
	if pv.Status.Phase != v1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete || backendDeleted(pv) {
		return nil
	}
	if err := c.refuseAttached(pv); err != nil {
		c.cfg.Recorder.Event(pv, v1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return fmt.Errorf("deleting backend of volume %s: %w", name, err)
	}
	if err := c.deleteBackend(ctx, pv); err != nil {
		c.cfg.Recorder.Event(pv, v1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return fmt.Errorf("deleting backend of volume %s: %w", name, err)
	}
	logging.FromContext(ctx).Info("volume deleted", "volume", name, "handle", pv.Spec.CSI.VolumeHandle)
	if pv, err = c.removeFinalizer(ctx, pv); err != nil {
		return err
	}
	uid := pv.UID
	err = c.cfg.Client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting volume %s: %w", name, err)
	}
	return nil
}

// backendDeleted reports whether pv is being deleted after its backend
// was: its deletion started and this provisioner's finalizer is off.
func backendDeleted(pv *v1.PersistentVolume) bool {
	return pv.DeletionTimestamp != nil && !slices.Contains(pv.Finalizers, Finalizer)
}

// refuseAttached returns an error while a VolumeAttachment names pv, for
// a driver with ControllerPublish: its volume is detached before it is
// deleted, as upstream's external-provisioner waits (its message).
func (c *Controller) refuseAttached(pv *v1.PersistentVolume) error {
	if c.attachments == nil {
		return nil
	}
	vas, err := c.attachments.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing volume attachments: %w", err)
	}
	for _, va := range vas {
		if src := va.Spec.Source.PersistentVolumeName; src != nil && *src == pv.Name {
			return fmt.Errorf("persistentvolume %s is still attached to node %s", pv.Name, va.Spec.NodeName)
		}
	}
	return nil
}

// deleteBackend calls DeleteVolume with the deletion secret recorded on
// the PV when it was provisioned.
func (c *Controller) deleteBackend(ctx context.Context, pv *v1.PersistentVolume) error {
	var ref *v1.SecretReference
	if name, ns := pv.Annotations[annDeletionSecretName], pv.Annotations[annDeletionSecretNamespace]; name != "" || ns != "" {
		ref = &v1.SecretReference{Name: name, Namespace: ns}
	}
	secrets, err := kube.Secrets(ctx, c.cfg.Client, ref)
	if err != nil {
		return err
	}
	return c.cfg.CSI.DeleteVolume(ctx, pv.Spec.CSI.VolumeHandle, secrets)
}

// removeFinalizer takes this provisioner's finalizer off pv.
func (c *Controller) removeFinalizer(ctx context.Context, pv *v1.PersistentVolume) (*v1.PersistentVolume, error) {
	if !slices.Contains(pv.Finalizers, Finalizer) {
		return pv, nil
	}
	clone := pv.DeepCopy()
	clone.Finalizers = slices.DeleteFunc(clone.Finalizers, func(f string) bool { return f == Finalizer })
	out, err := c.cfg.Client.CoreV1().PersistentVolumes().Update(ctx, clone, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return pv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("removing the finalizer of volume %s: %w", pv.Name, err)
	}
	return out, nil
}

func resourceBytes(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.BinarySI) }
