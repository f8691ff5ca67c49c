package attacher

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
	"volplane/internal/logging"
)

// syncAttachment converges one VolumeAttachment of this driver:
//
//	VolumeAttachment                   action
//	---------------------------------  ---------------------------------------------------
//	attached, not being deleted        nothing
//	not attached, not being deleted    finalizer + node ID annotation on it, finalizer on the
//	                                   PV, ControllerPublish, status attached with the
//	                                   publish context; failure: status.attachError, retry
//	being deleted, our finalizer       ControllerUnpublish, status detached, finalizer off,
//	                                   then the PV's finalizer when no attachment is left;
//	                                   failure: status.detachError, retry
//
// A driver without PUBLISH_UNPUBLISH_VOLUME is attached and detached
// without calls, as upstream's trivial handler does.
func (c *Controller) syncAttachment(ctx context.Context, name string) error {
	va, err := c.attachments.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if va.Spec.Attacher != c.cfg.Driver {
		return nil
	}
	if va.DeletionTimestamp != nil {
		return c.detach(ctx, va)
	}
	if va.Status.Attached {
		return nil
	}
	return c.attach(ctx, va)
}

// volumeSpec returns the PV spec a VolumeAttachment attaches, and the PV
// when it is not inline.
func (c *Controller) volumeSpec(ctx context.Context, va *storagev1.VolumeAttachment) (*v1.PersistentVolumeSpec, *v1.PersistentVolume, error) {
	src := va.Spec.Source
	if src.InlineVolumeSpec != nil {
		return src.InlineVolumeSpec, nil, nil
	}
	if src.PersistentVolumeName == nil {
		return nil, nil, fmt.Errorf("VolumeAttachment %s names no volume", va.Name)
	}
	pv, err := c.volumes.Get(*src.PersistentVolumeName)
	if apierrors.IsNotFound(err) {
		pv, err = c.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, *src.PersistentVolumeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading PersistentVolume %s: %w", *src.PersistentVolumeName, err)
	}
	return &pv.Spec, pv, nil
}

func (c *Controller) attach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	spec, pv, err := c.volumeSpec(ctx, va)
	if err == nil && (spec.CSI == nil || spec.CSI.Driver != c.cfg.Driver) {
		err = fmt.Errorf("volume of VolumeAttachment %s is not a CSI volume of %s", va.Name, c.cfg.Driver)
	}
	if err != nil {
		return c.attachFailed(ctx, va, err)
	}
	nodeID := va.Annotations[kube.AnnNodeID]
	if nodeID == "" && c.cfg.Capabilities.PublishUnpublish {
		csiNode, _ := c.csiNodes.Get(va.Spec.NodeName)
		d := kube.CSINodeDriver(csiNode, c.cfg.Driver)
		if d == nil || d.NodeID == "" {
			return c.attachFailed(ctx, va, fmt.Errorf("CSINode %s does not contain driver %s", va.Spec.NodeName, c.cfg.Driver))
		}
		nodeID = d.NodeID
	}
	// The finalizer and the node ID go on before the driver is called, so
	// that a deletion always finds what it needs to unpublish.
	if va, err = c.markAttachment(ctx, va, nodeID); err != nil {
		return err
	}
	if pv != nil {
		if err := c.addVolumeFinalizer(ctx, pv); err != nil {
			return err
		}
	}
	var publishContext map[string]string
	if c.cfg.Capabilities.PublishUnpublish {
		capability, err := kube.PublishCapability(spec, c.cfg.Capabilities.SingleNodeMultiWriter)
		if err != nil {
			return c.attachFailed(ctx, va, err)
		}
		secrets, err := kube.Secrets(ctx, c.cfg.Client, spec.CSI.ControllerPublishSecretRef)
		if err != nil {
			return c.attachFailed(ctx, va, err)
		}
		publishContext, err = c.cfg.CSI.ControllerPublish(ctx, &client.PublishRequest{
			VolumeID:   spec.CSI.VolumeHandle,
			NodeID:     nodeID,
			Capability: capability,
			ReadOnly:   spec.CSI.ReadOnly,
			Secrets:    secrets,
			Context:    spec.CSI.VolumeAttributes,
		})
		if err != nil {
			return c.attachFailed(ctx, va, err)
		}
	}
	clone := va.DeepCopy()
	clone.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: publishContext}
	if _, err := c.cfg.Client.StorageV1().VolumeAttachments().UpdateStatus(ctx, clone, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("marking %s attached: %w", va.Name, err)
	}
	logging.FromContext(ctx).Info("volume attached", "attachment", va.Name, "node", va.Spec.NodeName, "handle", spec.CSI.VolumeHandle)
	return nil
}

// markAttachment puts the finalizer and the node ID annotation on va.
func (c *Controller) markAttachment(ctx context.Context, va *storagev1.VolumeAttachment, nodeID string) (*storagev1.VolumeAttachment, error) {
	if slices.Contains(va.Finalizers, c.finalizer) && (nodeID == "" || va.Annotations[kube.AnnNodeID] == nodeID) {
		return va, nil
	}
	clone := va.DeepCopy()
	if !slices.Contains(clone.Finalizers, c.finalizer) {
		clone.Finalizers = append(clone.Finalizers, c.finalizer)
	}
	if nodeID != "" {
		metav1.SetMetaDataAnnotation(&clone.ObjectMeta, kube.AnnNodeID, nodeID)
	}
	out, err := c.cfg.Client.StorageV1().VolumeAttachments().Update(ctx, clone, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("adding the finalizer to %s: %w", va.Name, err)
	}
	return out, nil
}

func (c *Controller) addVolumeFinalizer(ctx context.Context, pv *v1.PersistentVolume) error {
	if slices.Contains(pv.Finalizers, c.finalizer) {
		return nil
	}
	clone := pv.DeepCopy()
	clone.Finalizers = append(clone.Finalizers, c.finalizer)
	if _, err := c.cfg.Client.CoreV1().PersistentVolumes().Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("adding the finalizer to PersistentVolume %s: %w", pv.Name, err)
	}
	return nil
}

// attachFailed records cause in status.attachError and returns it.
func (c *Controller) attachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error) error {
	clone := va.DeepCopy()
	clone.Status.Attached = false
	clone.Status.AttachError = &storagev1.VolumeError{Time: metav1.Now(), Message: cause.Error()}
	if st, ok := status.FromError(cause); ok { // the driver's gRPC code, as external-attacher records it (KEP-4876)
		clone.Status.AttachError.ErrorCode = ptr.To(int32(st.Code()))
	}
	if _, err := c.cfg.Client.StorageV1().VolumeAttachments().UpdateStatus(ctx, clone, metav1.UpdateOptions{}); err != nil {
		logging.FromContext(ctx).Debug("cannot record the attach error", "attachment", va.Name, "err", err)
	}
	return fmt.Errorf("attaching %s: %w", va.Name, cause)
}

func (c *Controller) detach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if !c.hasFinalizer(va.Finalizers) {
		return nil
	}
	nodeID := va.Annotations[kube.AnnNodeID]
	// Without a recorded node ID the driver was never called.
	if c.cfg.Capabilities.PublishUnpublish && nodeID != "" {
		spec, _, err := c.volumeSpec(ctx, va)
		if err != nil {
			return c.detachFailed(ctx, va, err)
		}
		if spec.CSI == nil {
			return c.detachFailed(ctx, va, fmt.Errorf("volume of VolumeAttachment %s is not a CSI volume", va.Name))
		}
		secrets, err := kube.Secrets(ctx, c.cfg.Client, spec.CSI.ControllerPublishSecretRef)
		if err != nil {
			return c.detachFailed(ctx, va, err)
		}
		if err := c.cfg.CSI.ControllerUnpublish(ctx, spec.CSI.VolumeHandle, nodeID, secrets); err != nil {
			return c.detachFailed(ctx, va, err)
		}
	}
	clone := va.DeepCopy()
	clone.Status = storagev1.VolumeAttachmentStatus{}
	updated, err := c.cfg.Client.StorageV1().VolumeAttachments().UpdateStatus(ctx, clone, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("marking %s detached: %w", va.Name, err)
	}
	updated.Finalizers = slices.DeleteFunc(updated.Finalizers, c.isFinalizer)
	if _, err := c.cfg.Client.StorageV1().VolumeAttachments().Update(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of %s: %w", va.Name, err)
	}
	logging.FromContext(ctx).Info("volume detached", "attachment", va.Name, "node", va.Spec.NodeName)
	if pvName := va.Spec.Source.PersistentVolumeName; pvName != nil {
		return c.syncVolume(ctx, *pvName)
	}
	return nil
}

// detachFailed records cause in status.detachError and returns it.
func (c *Controller) detachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error) error {
	clone := va.DeepCopy()
	clone.Status.DetachError = &storagev1.VolumeError{Time: metav1.Now(), Message: cause.Error()}
	if _, err := c.cfg.Client.StorageV1().VolumeAttachments().UpdateStatus(ctx, clone, metav1.UpdateOptions{}); err != nil {
		logging.FromContext(ctx).Debug("cannot record the detach error", "attachment", va.Name, "err", err)
	}
	return fmt.Errorf("detaching %s: %w", va.Name, cause)
}

// syncVolume takes the attacher's finalizer off a PV that no
// VolumeAttachment of this driver names any more.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.hasFinalizer(pv.Finalizers) {
		return nil
	}
	vas, err := c.attachments.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, va := range vas {
		gone := va.DeletionTimestamp != nil && !c.hasFinalizer(va.Finalizers)
		if !gone && va.Spec.Attacher == c.cfg.Driver && va.Spec.Source.PersistentVolumeName != nil && *va.Spec.Source.PersistentVolumeName == name {
			return nil
		}
	}
	pv.Finalizers = slices.DeleteFunc(pv.Finalizers, c.isFinalizer)
	if _, err := c.cfg.Client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of PersistentVolume %s: %w", name, err)
	}
	return nil
}

// isFinalizer: f is this attacher's finalizer, under its name or the
// older one.
func (c *Controller) isFinalizer(f string) bool {
	return f == c.finalizer || f == c.legacy
}

func (c *Controller) hasFinalizer(finalizers []string) bool {
	return slices.ContainsFunc(finalizers, c.isFinalizer)
}
