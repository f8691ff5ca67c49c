package provisioner

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
	"volplane/internal/logging"
)

// Finalizer is the finalizer upstream's external-provisioner puts on the
// PVs it creates with reclaim policy Delete: the object stays until the
// backend volume is deleted.
const Finalizer = "external-provisioner.volume.kubernetes.io/finalizer"

// Event reasons, upstream's.
const (
	reasonProvisioning              = "Provisioning"
	reasonProvisioningFailed        = "ProvisioningFailed"
	reasonProvisioningSucceeded     = "ProvisioningSucceeded"
	reasonProvisioningCleanupFailed = "ProvisioningCleanupFailed"
	reasonVolumeFailedDelete        = "VolumeFailedDelete"
)

// syncClaim provisions a volume for a claim waiting for this driver:
//
//	claim                                         action
//	--------------------------------------------  ------------------------------------------
//	bound, deleted, or for another provisioner    nothing
//	class gone or naming another provisioner      nothing (the PV controller reports it)
//	PV pvc-<uid> exists                           nothing (the PV controller binds it)
//	delayed binding without selected node         nothing (waits for the scheduler)
//	selected node gone                            ProvisioningFailed, selected node removed
//	otherwise                                     CreateVolume pvc-<uid>, create the PV
//	CreateVolume fails                            ProvisioningFailed, retry with backoff;
//	                                              ResourceExhausted at a selected node:
//	                                              selected node removed
func (c *Controller) syncClaim(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	claim, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.forUs(claim) {
		return nil
	}
	class, err := c.classes.Get(storagehelpers.GetPersistentVolumeClaimClass(claim))
	if err != nil || class.Provisioner != c.cfg.Driver {
		return nil
	}
	pvName := "pvc-" + string(claim.UID)
	if exists, err := c.volumeExists(pvName); err != nil || exists {
		return err
	}
	var node *v1.Node
	if nodeName := claim.Annotations[storagehelpers.AnnSelectedNode]; nodeName != "" {
		node, err = c.nodes.Get(nodeName)
		if err != nil {
			c.cfg.Recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed, fmt.Sprintf("failed to get target node: %v", err))
			if apierrors.IsNotFound(err) {
				c.reschedule(ctx, claim)
			}
			return err
		}
	} else if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		return nil
	}

	c.cfg.Recorder.Event(claim, v1.EventTypeNormal, reasonProvisioning,
		fmt.Sprintf("External provisioner is provisioning volume for claim %q", key))
	pv, err := c.provision(ctx, claim, class, node, pvName)
	if err != nil {
		c.cfg.Recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("failed to provision volume with StorageClass %q: %v", class.Name, err))
		if node != nil && c.cfg.Capabilities.Topology && client.Code(err) == codes.ResourceExhausted {
			c.reschedule(ctx, claim)
		}
		return err
	}
	return c.createVolume(ctx, claim, pv)
}

// volumeExists looks for the claim's PV in the cache, and among the PVs
// this controller created that the cache does not show yet. It used to
// ask the API for those: that read took ~0.5 s (p50) of every
// provisioning in bench provision under load. After a restart the cache,
// synced before the first sync, has every PV created before.
func (c *Controller) volumeExists(name string) (bool, error) {
	if _, ok := c.created.Load(name); ok {
		return true, nil
	}
	_, err := c.volumes.Get(name)
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("reading volume %s: %w", name, err)
	}
}

// reschedule removes the selected-node annotation so that the scheduler
// picks a node again.
func (c *Controller) reschedule(ctx context.Context, claim *v1.PersistentVolumeClaim) {
	clone := claim.DeepCopy()
	delete(clone.Annotations, storagehelpers.AnnSelectedNode)
	if _, err := c.cfg.Client.CoreV1().PersistentVolumeClaims(claim.Namespace).Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
		logging.FromContext(ctx).Warn("cannot remove the selected node", "claim", claim.Namespace+"/"+claim.Name, "err", err)
	}
}

// provision calls CreateVolume for the claim and returns the PV that
// describes the new volume, pre-bound to the claim.
func (c *Controller) provision(ctx context.Context, claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass, node *v1.Node, pvName string) (*v1.PersistentVolume, error) {
	req, err := c.request(ctx, claim, class, node, pvName)
	if err != nil {
		return nil, err
	}
	vol, err := c.cfg.CSI.CreateVolume(ctx, req)
	if err != nil {
		return nil, err
	}
	logging.FromContext(ctx).Info("volume created", "claim", claim.Namespace+"/"+claim.Name, "volume", pvName, "handle", vol.ID)
	return c.volumeFor(claim, class, pvName, req.RequiredBytes, vol)
}

// request builds the CreateVolume request of a claim.
func (c *Controller) request(ctx context.Context, claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass, node *v1.Node, pvName string) (*client.CreateVolumeRequest, error) {
	size := claim.Spec.Resources.Requests[v1.ResourceStorage]
	caps, err := kube.Capabilities(claim.Spec.AccessModes, claim.Spec.VolumeMode, class.Parameters[kube.ParamFSType],
		class.MountOptions, c.cfg.Capabilities.SingleNodeMultiWriter)
	if err != nil {
		return nil, err
	}
	ref, err := secretRef(provisionerSecret, class.Parameters, pvName, claim)
	if err != nil {
		return nil, err
	}
	secrets, err := kube.Secrets(ctx, c.cfg.Client, ref)
	if err != nil {
		return nil, err
	}
	requisite, preferred, err := c.requirements(claim, class, node)
	if err != nil {
		return nil, err
	}
	source, err := c.sourceVolume(claim, class)
	if err != nil {
		return nil, err
	}
	return &client.CreateVolumeRequest{
		SourceVolumeID: source,
		Name:           pvName,
		RequiredBytes:  size.Value(),
		Capabilities:   caps,
		Parameters:     kube.DriverParameters(class.Parameters),
		Secrets:        secrets,
		Requisite:      requisite,
		Preferred:      preferred,
	}, nil
}

// volumeFor is the PV of a created volume, pre-bound to claim.
func (c *Controller) volumeFor(claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass, pvName string, requested int64, vol *client.Volume) (*v1.PersistentVolume, error) {
	capacity := vol.CapacityBytes
	if capacity == 0 {
		capacity = requested
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	source := &v1.CSIPersistentVolumeSource{
		Driver:           c.cfg.Driver,
		VolumeHandle:     vol.ID,
		VolumeAttributes: vol.Context,
	}
	if claim.Spec.VolumeMode == nil || *claim.Spec.VolumeMode == v1.PersistentVolumeFilesystem {
		source.FSType = class.Parameters[kube.ParamFSType]
	}
	refs := []struct {
		sp  secretParams
		dst **v1.SecretReference
	}{
		{controllerPublishSecret, &source.ControllerPublishSecretRef},
		{nodeStageSecret, &source.NodeStageSecretRef},
		{nodePublishSecret, &source.NodePublishSecretRef},
		{controllerExpandSecret, &source.ControllerExpandSecretRef},
		{nodeExpandSecret, &source.NodeExpandSecretRef},
	}
	for _, r := range refs {
		ref, err := secretRef(r.sp, class.Parameters, pvName, claim)
		if err != nil {
			return nil, err
		}
		*r.dst = ref
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pvName,
			Annotations: map[string]string{storagehelpers.AnnDynamicallyProvisioned: c.cfg.Driver},
		},
		Spec: v1.PersistentVolumeSpec{
			Capacity:    v1.ResourceList{v1.ResourceStorage: *resourceBytes(capacity)},
			AccessModes: claim.Spec.AccessModes,
			ClaimRef: &v1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
			},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    claim.Spec.VolumeMode,
			NodeAffinity:                  kube.NodeAffinity(vol.AccessibleTopology),
			PersistentVolumeSource:        v1.PersistentVolumeSource{CSI: source},
		},
	}
	if reclaim == v1.PersistentVolumeReclaimDelete {
		pv.Finalizers = []string{Finalizer}
	}
	if ref, err := secretRef(provisionerSecret, class.Parameters, pvName, claim); err == nil && ref != nil {
		pv.Annotations[annDeletionSecretName] = ref.Name
		pv.Annotations[annDeletionSecretNamespace] = ref.Namespace
	}
	return pv, nil
}

// createVolume creates the PV of a new backend volume, retrying; when it
// cannot, it deletes the backend volume again, as upstream does. A crash
// anywhere is resumed by the next sync: CreateVolume of the same name
// returns the same volume, and the PV is created then.
func (c *Controller) createVolume(ctx context.Context, claim *v1.PersistentVolumeClaim, pv *v1.PersistentVolume) error {
	key := claim.Namespace + "/" + claim.Name
	var err error
	for i := 0; i < c.cfg.PVCreateRetries; i++ {
		_, err = c.cfg.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			c.created.Store(pv.Name, struct{}{})
			logging.FromContext(ctx).Info("volume provisioned", "claim", key, "volume", pv.Name)
			c.cfg.Recorder.Event(claim, v1.EventTypeNormal, reasonProvisioningSucceeded,
				fmt.Sprintf("Successfully provisioned volume %s", pv.Name))
			return nil
		}
		logging.FromContext(ctx).Warn("creating provisioned volume failed", "claim", key, "volume", pv.Name, "err", err)
		if i+1 < c.cfg.PVCreateRetries && sleep(ctx, c.cfg.PVCreateRetryInterval) != nil {
			// Stopping: the next run creates the PV.
			return ctx.Err()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.cfg.Recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningFailed,
		fmt.Sprintf("Error creating provisioned PV object for claim %s: %v. Deleting the volume.", key, err))
	if derr := c.deleteBackend(ctx, pv); derr != nil {
		c.cfg.Recorder.Event(claim, v1.EventTypeWarning, reasonProvisioningCleanupFailed,
			fmt.Sprintf("Error cleaning provisioned volume for claim %s: %v. Please delete manually.", key, derr))
	}
	return fmt.Errorf("creating volume %s for claim %s: %w", pv.Name, key, err)
}

// sourceVolume is the volume handle a claim clones (a dataSource naming
// a claim of the same namespace, bound to a volume of this driver and
// class, no larger than the new claim), "" without a data source. Other
// data sources (snapshots, populators) are not supported yet and fail,
// rather than give the claim an empty volume.
func (c *Controller) sourceVolume(claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass) (string, error) {
	ds := claim.Spec.DataSourceRef
	if ds == nil {
		if claim.Spec.DataSource == nil {
			return "", nil
		}
		ds = &v1.TypedObjectReference{APIGroup: claim.Spec.DataSource.APIGroup, Kind: claim.Spec.DataSource.Kind, Name: claim.Spec.DataSource.Name}
	}
	if ds.Kind != "PersistentVolumeClaim" || (ds.APIGroup != nil && *ds.APIGroup != "") || (ds.Namespace != nil && *ds.Namespace != claim.Namespace) {
		return "", fmt.Errorf("data source %s %q is not supported", ds.Kind, ds.Name)
	}
	src, err := c.claims.PersistentVolumeClaims(claim.Namespace).Get(ds.Name)
	if err != nil {
		return "", fmt.Errorf("error getting PVC %s (namespace %q) from api server: %w", ds.Name, claim.Namespace, err)
	}
	if src.Status.Phase != v1.ClaimBound || src.Spec.VolumeName == "" {
		return "", fmt.Errorf("the PVC %s is not bound", ds.Name)
	}
	if storagehelpers.GetPersistentVolumeClaimClass(src) != class.Name {
		return "", fmt.Errorf("the source PVC and destination PVCs must be in the same storage class for cloning; source is in %q, but destination is in %q",
			storagehelpers.GetPersistentVolumeClaimClass(src), class.Name)
	}
	want, have := claim.Spec.Resources.Requests[v1.ResourceStorage], src.Spec.Resources.Requests[v1.ResourceStorage]
	if want.Cmp(have) < 0 {
		return "", fmt.Errorf("error, new PVC request must be greater than or equal in size to the specified PVC data source, requested %v but source is %v", want.Value(), have.Value())
	}
	pv, err := c.volumes.Get(src.Spec.VolumeName)
	if err != nil {
		return "", fmt.Errorf("error getting volume %s of the source PVC: %w", src.Spec.VolumeName, err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != c.cfg.Driver {
		return "", fmt.Errorf("the source PVC %s is not a volume of %s", ds.Name, c.cfg.Driver)
	}
	return pv.Spec.CSI.VolumeHandle, nil
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
