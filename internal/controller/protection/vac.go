package protection

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"volplane/internal/controller"
	"volplane/internal/logging"
)

const (
	// VACName is the volumeattributesclass-protection controller's name,
	// upstream's.
	VACName = "volumeattributesclass-protection"
	// VACFinalizer keeps a VolumeAttributesClass while a claim or a volume
	// refers to it. The API's admission adds it at creation.
	VACFinalizer = "kubernetes.io/vac-protection"

	// vacIndex indexes claims and volumes by the classes they refer to.
	vacIndex = "volplane-vac-protection"
)

// VACDescriptor returns the manager's descriptor for
// volumeattributesclass-protection.
func VACDescriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{
		Name: VACName,
		Init: func(_ context.Context, cctx *controller.Context) (controller.Controller, error) {
			c := cfg
			if c.Workers == 0 {
				c.Workers = cctx.Workers
			}
			return NewVAC(c, cctx.Client, cctx.Informers)
		},
	}
}

// VACController is volumeattributesclass-protection.
type VACController struct {
	cfg     Config
	client  kubernetes.Interface
	classes storagelisters.VolumeAttributesClassLister
	claims  cache.Indexer
	volumes cache.Indexer
	queue   workqueue.TypedRateLimitingInterface[string]
	synced  []cache.InformerSynced
}

// claimVACs are the classes a claim refers to, as upstream counts them:
// the one its spec asks for, the one its volume has now, and the target
// of a modification in progress.
func claimVACs(c *v1.PersistentVolumeClaim) []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	add(ptr.Deref(c.Spec.VolumeAttributesClassName, ""))
	add(ptr.Deref(c.Status.CurrentVolumeAttributesClassName, ""))
	if s := c.Status.ModifyVolumeStatus; s != nil {
		add(s.TargetVolumeAttributesClassName)
	}
	return out
}

// volumeVACs are the classes a volume refers to.
func volumeVACs(pv *v1.PersistentVolume) []string {
	if n := ptr.Deref(pv.Spec.VolumeAttributesClassName, ""); n != "" {
		return []string{n}
	}
	return nil
}

// NewVAC builds volumeattributesclass-protection and registers its
// informers and indexes.
func NewVAC(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory) (*VACController, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	vacInf := factory.Storage().V1().VolumeAttributesClasses()
	pvcInf := factory.Core().V1().PersistentVolumeClaims().Informer()
	pvInf := factory.Core().V1().PersistentVolumes().Informer()
	c := &VACController{
		cfg: cfg, client: client, classes: vacInf.Lister(),
		claims: pvcInf.GetIndexer(), volumes: pvInf.GetIndexer(),
		queue: controller.NewQueue(VACName),
	}
	if err := pvcInf.AddIndexers(cache.Indexers{vacIndex: func(obj any) ([]string, error) {
		if pvc, ok := obj.(*v1.PersistentVolumeClaim); ok {
			return claimVACs(pvc), nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("%s: claim index: %w", VACName, err)
	}
	if err := pvInf.AddIndexers(cache.Indexers{vacIndex: func(obj any) ([]string, error) {
		if pv, ok := obj.(*v1.PersistentVolume); ok {
			return volumeVACs(pv), nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("%s: volume index: %w", VACName, err)
	}
	vacReg, err := vacInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onClass,
		UpdateFunc: func(_, obj any) { c.onClass(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VACName, err)
	}
	// A class may be freed when a claim or volume stops naming it: queue
	// the classes the old version named and the new one does not.
	pvcReg, err := pvcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) { c.released(refsOf(old), refsOf(obj)) },
		DeleteFunc: func(obj any) { c.released(refsOf(obj), nil) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VACName, err)
	}
	pvReg, err := pvInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) { c.released(refsOf(old), refsOf(obj)) },
		DeleteFunc: func(obj any) { c.released(refsOf(obj), nil) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VACName, err)
	}
	c.synced = []cache.InformerSynced{vacReg.HasSynced, pvcReg.HasSynced, pvReg.HasSynced}
	return c, nil
}

// refsOf returns the classes a claim or volume (or its tombstone) names.
func refsOf(obj any) []string {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *v1.PersistentVolumeClaim:
		return claimVACs(o)
	case *v1.PersistentVolume:
		return volumeVACs(o)
	}
	return nil
}

func (c *VACController) released(old, cur []string) {
	for _, n := range old {
		if !slices.Contains(cur, n) {
			c.queue.Add(n)
		}
	}
}

// Run syncs classes until ctx is done.
func (c *VACController) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	logging.FromContext(ctx).Info("starting volumeattributesclass-protection", "workers", c.cfg.Workers)
	runQueue(ctx, c.queue, c.cfg.Workers, c.sync)
}

func (c *VACController) onClass(obj any) {
	vac, ok := obj.(*storagev1.VolumeAttributesClass)
	if !ok {
		return
	}
	if needsFinalizer(vac, VACFinalizer) || deletionCandidate(vac, VACFinalizer) {
		c.queue.Add(vac.Name)
	}
}

// inUse reports whether a claim or a volume in the informers' caches
// refers to the class.
func (c *VACController) inUse(name string) (bool, error) {
	for _, idx := range []cache.Indexer{c.volumes, c.claims} {
		objs, err := idx.ByIndex(vacIndex, name)
		if err != nil {
			return true, fmt.Errorf("looking up users of volume attributes class %s: %w", name, err)
		}
		if len(objs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

func (c *VACController) sync(ctx context.Context, name string) error {
	vac, err := c.classes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	log := logging.FromContext(ctx)
	switch {
	case deletionCandidate(vac, VACFinalizer):
		used, err := c.inUse(name)
		if err != nil {
			return err
		}
		if used {
			log.Debug("keeping volume attributes class in use", "class", name)
			return nil
		}
		clone := vac.DeepCopy()
		clone.Finalizers = withoutFinalizer(clone.Finalizers, VACFinalizer)
		if _, err := c.client.StorageV1().VolumeAttributesClasses().Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("removing %s from volume attributes class %s: %w", VACFinalizer, name, err)
		}
		log.Info("volume attributes class not in use, finalizer removed", "class", name)
	case needsFinalizer(vac, VACFinalizer):
		clone := vac.DeepCopy()
		clone.Finalizers = append(clone.Finalizers, VACFinalizer)
		if _, err := c.client.StorageV1().VolumeAttributesClasses().Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding %s to volume attributes class %s: %w", VACFinalizer, name, err)
		}
	}
	return nil
}
