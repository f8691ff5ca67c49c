package protection

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
	"volplane/internal/logging"
)

// PVName is the pv-protection controller's name, upstream's.
const PVName = "pv-protection"

// PVDescriptor returns the manager's descriptor for pv-protection.
func PVDescriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{
		Name: PVName,
		Init: func(_ context.Context, cctx *controller.Context) (controller.Controller, error) {
			c := cfg
			if c.Workers == 0 {
				c.Workers = cctx.Workers
			}
			return NewPV(c, cctx.Client, cctx.Informers)
		},
	}
}

// PVController is pv-protection.
type PVController struct {
	cfg     Config
	client  kubernetes.Interface
	volumes corelisters.PersistentVolumeLister
	queue   workqueue.TypedRateLimitingInterface[string]
	synced  []cache.InformerSynced
}

// NewPV builds pv-protection and registers its informer.
func NewPV(cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory) (*PVController, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	inf := factory.Core().V1().PersistentVolumes()
	c := &PVController{cfg: cfg, client: client, volumes: inf.Lister(), queue: controller.NewQueue(PVName)}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onVolume,
		UpdateFunc: func(_, obj any) { c.onVolume(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PVName, err)
	}
	c.synced = []cache.InformerSynced{reg.HasSynced}
	return c, nil
}

// Run syncs volumes until ctx is done.
func (c *PVController) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	logging.FromContext(ctx).Info("starting pv-protection", "workers", c.cfg.Workers)
	runQueue(ctx, c.queue, c.cfg.Workers, c.sync)
}

func (c *PVController) onVolume(obj any) {
	pv, ok := obj.(*v1.PersistentVolume)
	if !ok {
		return
	}
	if needsFinalizer(pv, PVFinalizer) || deletionCandidate(pv, PVFinalizer) {
		c.queue.Add(pv.Name)
	}
}

func (c *PVController) sync(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case deletionCandidate(pv, PVFinalizer):
		if pv.Status.Phase == v1.VolumeBound {
			logging.FromContext(ctx).Debug("keeping bound volume", "volume", name)
			return nil
		}
		clone := pv.DeepCopy()
		clone.Finalizers = withoutFinalizer(clone.Finalizers, PVFinalizer)
		if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("removing %s from volume %s: %w", PVFinalizer, name, err)
		}
		logging.FromContext(ctx).Info("volume not bound, finalizer removed", "volume", name)
	case needsFinalizer(pv, PVFinalizer):
		clone := pv.DeepCopy()
		clone.Finalizers = append(clone.Finalizers, PVFinalizer)
		if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, clone, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding %s to volume %s: %w", PVFinalizer, name, err)
		}
	}
	return nil
}
