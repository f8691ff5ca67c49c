package binder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/controller/podindex"
	"volplane/internal/logging"
)

// Recycler scrubs a released volume so that it can be bound again
// (reclaim policy Recycle).
type Recycler interface {
	// Recycle empties the volume. It returns an error wrapping
	// ErrNotRecyclable for volumes it cannot scrub. event reports
	// progress, which the controller emits as RecyclerPod events.
	Recycle(ctx context.Context, pv *v1.PersistentVolume, event func(eventtype, message string)) error
}

// ErrNotRecyclable is wrapped by Recycler.Recycle for volume types it
// does not handle.
var ErrNotRecyclable = errors.New("no recycler for the volume type")

// reclaimVolume applies a released volume's reclaim policy. Delete and
// Recycle run as operations (operations.go), one per volume, retried with
// backoff when they fail.
//
//	policy    action
//	--------  ---------------------------------------------------------------
//	Retain    nothing: Released until an admin removes spec.claimRef
//	Delete    the provisioner deletes the backend, then the PV is deleted;
//	          failure: Failed, VolumeFailedDelete event, retry with backoff;
//	          provisioned by an external provisioner: left to it
//	Recycle   scrub (Recycler), VolumeRecycled event, unbind -> Available;
//	          failure: Failed, VolumeFailedRecycle event, retry with backoff
//	other     Failed, VolumeUnknownReclaimPolicy event
func (c *Controller) reclaimVolume(ctx context.Context, volume *v1.PersistentVolume) error {
	name, uid := volume.Name, volume.UID
	retry := func(delay time.Duration) { c.volumeQueue.AddAfter(name, delay) }
	switch volume.Spec.PersistentVolumeReclaimPolicy {
	case v1.PersistentVolumeReclaimRetain:
		return nil
	case v1.PersistentVolumeReclaimDelete:
		c.ops.Run(ctx, fmt.Sprintf("delete-%s[%s]", name, uid), func(ctx context.Context) error {
			return c.deleteVolumeOperation(ctx, name)
		}, retry)
		return nil
	case v1.PersistentVolumeReclaimRecycle:
		c.ops.Run(ctx, fmt.Sprintf("recycle-%s[%s]", name, uid), func(ctx context.Context) error {
			return c.recycleVolumeOperation(ctx, name)
		}, retry)
		return nil
	default:
		_, err := c.updateVolumePhaseWithEvent(ctx, volume, v1.VolumeFailed, v1.EventTypeWarning,
			reasonVolumeUnknownReclaim, "Volume has unrecognized PersistentVolumeReclaimPolicy")
		return err
	}
}

// releasedVolume reads the volume from the API and returns it if it still
// needs reclaiming: it names a claim by UID, and that claim is gone or
// bound to another volume. Operations may have waited; they act on what
// the API has now.
func (c *Controller) releasedVolume(ctx context.Context, name string) (*v1.PersistentVolume, error) {
	volume, err := c.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading volume %s: %w", name, err)
	}
	ref := volume.Spec.ClaimRef
	if ref == nil || ref.UID == "" {
		return nil, nil
	}
	claim := c.store.claim(claimRefKey(ref))
	if claim != nil && claim.UID == ref.UID && (claim.Spec.VolumeName == "" || claim.Spec.VolumeName == volume.Name) {
		return nil, nil
	}
	return volume, nil
}

// failVolume marks a volume Failed with reason and message, and emits
// the event every time (the event recorder counts repeats).
func (c *Controller) failVolume(ctx context.Context, volume *v1.PersistentVolume, reason, message string) error {
	if _, err := c.updateVolumePhase(ctx, volume, v1.VolumeFailed, reason, message); err != nil {
		return err
	}
	c.recorder.Event(volume, v1.EventTypeWarning, reason, message)
	return nil
}

// deleterFor finds the provisioner that deletes volume: the one named by
// its provisioned-by annotation, else one that recognises its spec. nil
// without error means an external provisioner deletes it.
func (c *Controller) deleterFor(volume *v1.PersistentVolume) (Provisioner, error) {
	if name := volume.Annotations[storagehelpers.AnnDynamicallyProvisioned]; name != "" {
		if p := c.provisioners[name]; p != nil {
			return p, nil
		}
		if !strings.HasPrefix(name, "kubernetes.io/") {
			return nil, nil
		}
		return nil, fmt.Errorf("no volume plugin matched name: %s", name)
	}
	for _, n := range slices.Sorted(maps.Keys(c.provisioners)) {
		if sd, ok := c.provisioners[n].(SpecDeleter); ok && sd.CanDelete(volume) {
			return c.provisioners[n], nil
		}
	}
	return nil, fmt.Errorf("error getting deleter volume plugin for volume %q: no deletable volume plugin matched", volume.Name)
}

// deleteVolumeOperation deletes a released volume's backend and then its
// PV object. Crash-safe: every step is repeated until the PV is gone.
func (c *Controller) deleteVolumeOperation(ctx context.Context, name string) error {
	log := logging.FromContext(ctx)
	volume, err := c.releasedVolume(ctx, name)
	if err != nil || volume == nil {
		return err
	}
	p, err := c.deleterFor(volume)
	if err != nil {
		if ferr := c.failVolume(ctx, volume, reasonVolumeFailedDelete, err.Error()); ferr != nil {
			return ferr
		}
		return err
	}
	if p == nil {
		log.Debug("volume is deleted by its external provisioner", "volume", name)
		return nil
	}
	if err := p.Delete(ctx, volume); err != nil {
		if errors.Is(err, ErrDeletedVolumeInUse) {
			c.recorder.Event(volume, v1.EventTypeNormal, reasonVolumeDelete, err.Error())
			return err
		}
		if ferr := c.failVolume(ctx, volume, reasonVolumeFailedDelete, err.Error()); ferr != nil {
			return ferr
		}
		return fmt.Errorf("deleting backend of volume %s: %w", name, err)
	}
	log.Info("volume backend deleted", "volume", name, "provisioner", p.Name())
	if slices.Contains(volume.Finalizers, storagehelpers.PVDeletionInTreeProtectionFinalizer) {
		clone := volume.DeepCopy()
		clone.Finalizers = slices.DeleteFunc(clone.Finalizers, func(f string) bool {
			return f == storagehelpers.PVDeletionInTreeProtectionFinalizer
		})
		if volume, err = c.writeVolume(ctx, clone); err != nil {
			return err
		}
	}
	uid := volume.UID
	err = c.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	c.countWrite("persistentvolumes", "delete", err)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting volume %s: %w", name, err)
	}
	return nil
}

// recycleVolumeOperation scrubs a released Recycle volume and makes it
// Available. Crash-safe: scrubbing again is harmless.
func (c *Controller) recycleVolumeOperation(ctx context.Context, name string) error {
	volume, err := c.releasedVolume(ctx, name)
	if err != nil || volume == nil {
		return err
	}
	// A new claim of the same name proves the old one is gone, and the
	// pods naming that name use the new claim; otherwise pods naming the
	// claim still use this volume.
	ref := volume.Spec.ClaimRef
	if c.store.claim(claimRefKey(ref)) == nil && c.pods != nil {
		pods, err := podindex.Pods(c.pods, ref.Namespace, ref.Name)
		if err != nil {
			return err
		}
		var users []string
		for _, p := range pods {
			if !podindex.IsTerminated(p) {
				users = append(users, p.Namespace+"/"+p.Name)
			}
		}
		if len(users) > 0 {
			slices.Sort(users)
			msg := "Volume is used by pods: " + strings.Join(users, ",")
			c.recorder.Event(volume, v1.EventTypeNormal, reasonVolumeFailedRecycle, msg)
			return errors.New(msg)
		}
	}
	err = c.recycler.Recycle(ctx, volume, func(eventtype, message string) {
		c.recorder.Eventf(volume, eventtype, reasonRecyclerPod, "Recycler pod: %s", message)
	})
	switch {
	case errors.Is(err, ErrNotRecyclable):
		if ferr := c.failVolume(ctx, volume, reasonVolumeFailedRecycle, "No recycler plugin found for the volume!"); ferr != nil {
			return ferr
		}
		return err
	case err != nil:
		if ferr := c.failVolume(ctx, volume, reasonVolumeFailedRecycle, fmt.Sprintf("Recycle failed: %s", err)); ferr != nil {
			return ferr
		}
		return err
	}
	c.recorder.Event(volume, v1.EventTypeNormal, reasonVolumeRecycled, "Volume recycled")
	if latest := c.store.volume(name); latest != nil && latest.UID == volume.UID && !newer(volume.ResourceVersion, latest.ResourceVersion) {
		volume = latest
	}
	return c.unbindVolume(ctx, volume)
}
