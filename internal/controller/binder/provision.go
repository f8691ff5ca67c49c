package binder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/logging"
)

// Provisioner creates and deletes the backend volumes of one StorageClass
// provisioner, in-process. The PV controller calls it for claims whose
// class names it (Name), and to delete the volumes it provisioned (those
// whose pv.kubernetes.io/provisioned-by annotation names it). Classes
// naming a provisioner that is not in-process are left to an external
// provisioner, which finds the claim by its storage-provisioner
// annotations.
type Provisioner interface {
	// Name is the provisioner name StorageClasses use, and the value of
	// pv.kubernetes.io/provisioned-by on the volumes it creates.
	Name() string
	// Provision creates the backend volume for req and returns the PV
	// describing it: source, capacity, access modes, volume mode, node
	// affinity, labels. The controller sets the name (req.PVName),
	// claimRef, class, reclaim policy, mount options and annotations.
	// Provision is idempotent by req.PVName: called again for the same
	// name (after a crash), it returns the same volume.
	Provision(ctx context.Context, req ProvisionRequest) (*v1.PersistentVolume, error)
	// Delete deletes the backend of a volume this provisioner created. A
	// backend already gone is success. An error wrapping
	// ErrDeletedVolumeInUse asks for a retry without failing the volume.
	Delete(ctx context.Context, pv *v1.PersistentVolume) error
}

// SpecDeleter is implemented by provisioners that can also delete volumes
// they did not provision, recognised by their spec (upstream's hostPath
// deleter does that for statically created volumes).
type SpecDeleter interface {
	CanDelete(pv *v1.PersistentVolume) bool
}

// ProvisionRequest is what a Provisioner gets to create a volume.
type ProvisionRequest struct {
	// PVName is the name of the PV to be, "pvc-<claim UID>".
	PVName string
	Claim  *v1.PersistentVolumeClaim
	Class  *storagev1.StorageClass
	// SelectedNode is the node the scheduler chose for a delayed-binding
	// claim, nil otherwise.
	SelectedNode *v1.Node
}

// ErrDeletedVolumeInUse is wrapped by Provisioner.Delete when the backend
// is still in use; the volume is not marked Failed and deletion is
// retried.
var ErrDeletedVolumeInUse = errors.New("volume is still in use")

// provisionClaim provisions a volume for a claim with a class, or asks an
// external provisioner to. It is called from syncNoMatch with the claim's
// lock held.
func (c *Controller) provisionClaim(ctx context.Context, claim *v1.PersistentVolumeClaim) error {
	if c.cfg.DisableDynamicProvisioning {
		return nil
	}
	class, err := c.classes.Get(storagehelpers.GetPersistentVolumeClaimClass(claim))
	if err != nil {
		// A missing class is named in the event; the claim stays Pending
		// and is retried at the resync (upstream does the same).
		c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed, err.Error())
		return nil
	}
	if !c.provisions(class) {
		c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("no volume plugin matched name: %s", class.Provisioner))
		return nil
	}
	p := c.provisioners[class.Provisioner]
	if p == nil {
		return c.provisionExternal(ctx, claim, class)
	}
	key, uid := claimKey(claim), claim.UID
	opName := fmt.Sprintf("provision-%s[%s]", key, uid)
	c.ops.Run(ctx, opName, func(ctx context.Context) error {
		return c.provisionOperation(ctx, key, uid, class, p)
	}, func(delay time.Duration) { c.claimQueue.AddAfter(key, delay) })
	return nil
}

// provisions is whether claims of class are provisioned: by an
// in-process provisioner, or by an external one, which any name outside
// kubernetes.io/ may be. In-tree names without an in-process provisioner,
// kubernetes.io/no-provisioner among them, never provision.
func (c *Controller) provisions(class *storagev1.StorageClass) bool {
	return c.provisioners[class.Provisioner] != nil || !strings.HasPrefix(class.Provisioner, "kubernetes.io/")
}

// provisionExternal marks the claim for an external provisioner.
func (c *Controller) provisionExternal(ctx context.Context, claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	claim, err := c.setClaimProvisioner(ctx, claim, class.Provisioner)
	if err != nil {
		c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed, fmt.Sprintf("Error saving claim: %v", err))
		return err
	}
	c.recorder.Event(claim, v1.EventTypeNormal, reasonExternalProvisioning, fmt.Sprintf(
		"Waiting for a volume to be created either by the external provisioner '%s' "+
			"or manually by the system administrator. If volume creation is delayed, please verify that "+
			"the provisioner is running and correctly registered.", class.Provisioner))
	return nil
}

// setClaimProvisioner writes the storage-provisioner annotations (current
// and beta) naming provisioner, unless present.
func (c *Controller) setClaimProvisioner(ctx context.Context, claim *v1.PersistentVolumeClaim, provisioner string) (*v1.PersistentVolumeClaim, error) {
	if claim.Annotations[storagehelpers.AnnStorageProvisioner] == provisioner &&
		claim.Annotations[storagehelpers.AnnBetaStorageProvisioner] == provisioner {
		return claim, nil
	}
	clone := claim.DeepCopy()
	metav1.SetMetaDataAnnotation(&clone.ObjectMeta, storagehelpers.AnnStorageProvisioner, provisioner)
	metav1.SetMetaDataAnnotation(&clone.ObjectMeta, storagehelpers.AnnBetaStorageProvisioner, provisioner)
	out, err := c.writeClaim(ctx, clone)
	if err != nil {
		return claim, err
	}
	return out, nil
}

// provisionOperation provisions a volume for claim key (with uid) and
// creates its PV, pre-bound to the claim; the claim's sync then binds
// them. Every step is safe to repeat: the PV's name is fixed by the
// claim's UID, and an existing PV ends the operation.
func (c *Controller) provisionOperation(ctx context.Context, key string, uid types.UID, class *storagev1.StorageClass, p Provisioner) error {
	log := logging.FromContext(ctx)
	claim := c.store.claim(key)
	if claim == nil || claim.UID != uid || !needsMatch(claim) {
		return nil
	}
	claim, err := c.setClaimProvisioner(ctx, claim, p.Name())
	if err != nil {
		return err
	}
	pvName := "pvc-" + string(claim.UID)
	if c.store.volume(pvName) != nil {
		return nil
	}
	switch _, err := c.client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{}); {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading volume %s: %w", pvName, err)
	}

	req := ProvisionRequest{PVName: pvName, Claim: claim, Class: class}
	if node, ok := claim.Annotations[storagehelpers.AnnSelectedNode]; ok {
		n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed, fmt.Sprintf("Failed to get target node: %v", err))
			return fmt.Errorf("reading selected node %s: %w", node, err)
		}
		req.SelectedNode = n
	}
	volume, err := p.Provision(ctx, req)
	if err != nil {
		c.rescheduleProvisioning(ctx, claim)
		c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("Failed to provision volume with StorageClass %q: %v", class.Name, err))
		return fmt.Errorf("provisioning claim %s: %w", key, err)
	}

	volume.Name = pvName
	volume.Spec.ClaimRef = &v1.ObjectReference{
		Kind: "PersistentVolumeClaim", APIVersion: "v1",
		Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
	}
	volume.Spec.StorageClassName = class.Name
	volume.Spec.PersistentVolumeReclaimPolicy = v1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		volume.Spec.PersistentVolumeReclaimPolicy = *class.ReclaimPolicy
	}
	if len(class.MountOptions) > 0 {
		volume.Spec.MountOptions = class.MountOptions
	}
	metav1.SetMetaDataAnnotation(&volume.ObjectMeta, storagehelpers.AnnBoundByController, "yes")
	metav1.SetMetaDataAnnotation(&volume.ObjectMeta, storagehelpers.AnnDynamicallyProvisioned, p.Name())
	if fins, changed := inTreeFinalizers(volume); changed {
		// The backend must go before the object does.
		volume.Finalizers = fins
	}
	volume.Status = v1.PersistentVolumeStatus{Phase: v1.VolumeBound}

	var created *v1.PersistentVolume
	for i := 0; i < c.cfg.ProvisionRetries; i++ {
		created, err = c.client.CoreV1().PersistentVolumes().Create(ctx, volume, metav1.CreateOptions{})
		c.countWrite("persistentvolumes", "create", err)
		if err == nil || apierrors.IsAlreadyExists(err) {
			err = nil
			break
		}
		log.Warn("creating provisioned volume failed", "claim", key, "volume", pvName, "err", err)
		if i+1 < c.cfg.ProvisionRetries {
			if werr := sleep(ctx, c.cfg.ProvisionRetryInterval); werr != nil {
				break
			}
		}
	}
	if err != nil {
		c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("Error creating provisioned PV object for claim %s: %v. Deleting the volume.", key, err))
		var derr error
		for i := 0; i < c.cfg.ProvisionRetries; i++ {
			if derr = p.Delete(ctx, volume); derr == nil {
				break
			}
			if i+1 < c.cfg.ProvisionRetries && sleep(ctx, c.cfg.ProvisionRetryInterval) != nil {
				break
			}
		}
		if derr != nil {
			c.recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningCleanupFailed,
				fmt.Sprintf("Error cleaning provisioned volume for claim %s: %v. Please delete manually.", key, derr))
		}
		return fmt.Errorf("creating volume %s for claim %s: %w", pvName, key, err)
	}
	if created != nil {
		c.onVolume(created)
	}
	log.Info("volume provisioned", "claim", key, "volume", pvName, "provisioner", p.Name())
	c.recorder.Event(claim, v1.EventTypeNormal, reasonProvisioningSucceeded,
		fmt.Sprintf("Successfully provisioned volume %s using %s", pvName, p.Name()))
	return nil
}

// rescheduleProvisioning removes the selected-node annotation after a
// failed provisioning, so that the scheduler picks a node again.
func (c *Controller) rescheduleProvisioning(ctx context.Context, claim *v1.PersistentVolumeClaim) {
	if !metav1.HasAnnotation(claim.ObjectMeta, storagehelpers.AnnSelectedNode) {
		return
	}
	clone := claim.DeepCopy()
	delete(clone.Annotations, storagehelpers.AnnSelectedNode)
	if _, err := c.writeClaim(ctx, clone); err != nil {
		logging.FromContext(ctx).Debug("cannot remove the selected node", "claim", claimKey(claim), "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
