package attachdetach

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"volplane/internal/controller"
	"volplane/internal/logging"
)

// Name is the controller's name in the manager, upstream's short name.
const Name = "attachdetach"

// Component is the source of the controller's events, upstream's.
const Component = "attachdetach-controller"

// Descriptor runs the attach/detach controller in the manager.
func Descriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{Name: Name, Init: func(ctx context.Context, cctx *controller.Context) (controller.Controller, error) {
		return New(cfg, cctx.Client, cctx.Informers, cctx.Recorder(Component))
	}}
}

// Controller is the attach/detach controller.
type Controller struct {
	cfg         Config
	client      kubernetes.Interface
	recorder    record.EventRecorder
	nodes       corelisters.NodeLister
	pods        corelisters.PodLister
	claims      corelisters.PersistentVolumeClaimLister
	volumes     corelisters.PersistentVolumeLister
	drivers     storagelisters.CSIDriverLister
	attachments storagelisters.VolumeAttachmentLister

	trigger chan struct{}
	now     func() time.Time
	// The reconciler's memory; only the reconcile goroutine touches it.
	undesiredSince map[string]time.Time // VolumeAttachment -> when no pod needed it
	reported       map[string]bool      // events already emitted, by key
	// VolumeAttachments this controller deleted, until its informer no
	// longer lists them: detaching even while the informer, behind,
	// shows them attached and not being deleted.
	deleted map[types.UID]bool
}

// New builds the controller and registers its informers.
func New(cfg Config, client kubernetes.Interface, f informers.SharedInformerFactory, recorder record.EventRecorder) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:            cfg,
		client:         client,
		recorder:       recorder,
		nodes:          f.Core().V1().Nodes().Lister(),
		pods:           f.Core().V1().Pods().Lister(),
		claims:         f.Core().V1().PersistentVolumeClaims().Lister(),
		volumes:        f.Core().V1().PersistentVolumes().Lister(),
		drivers:        f.Storage().V1().CSIDrivers().Lister(),
		attachments:    f.Storage().V1().VolumeAttachments().Lister(),
		trigger:        make(chan struct{}, 1),
		now:            time.Now,
		undesiredSince: map[string]time.Time{},
		reported:       map[string]bool{},
		deleted:        map[types.UID]bool{},
	}
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(_, _ any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		f.Core().V1().Nodes().Informer(),
		f.Core().V1().Pods().Informer(),
		f.Core().V1().PersistentVolumeClaims().Informer(),
		f.Core().V1().PersistentVolumes().Informer(),
		f.Storage().V1().CSIDrivers().Informer(),
		f.Storage().V1().VolumeAttachments().Informer(),
	} {
		if _, err := inf.AddEventHandler(kick); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) kick() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run reconciles on every change and every ReconcilePeriod until ctx is
// done.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReconcilePeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.trigger:
		case <-t.C:
		}
		if err := c.reconcile(ctx); err != nil && ctx.Err() == nil {
			logging.FromContext(ctx).Warn("reconcile failed, retrying", "err", err)
		}
	}
}

// nodeHealthy: the node's Ready condition is True.
func nodeHealthy(n *v1.Node) bool {
	if n == nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// outOfService: the node carries node.kubernetes.io/out-of-service with
// effect NoExecute, the admin's word that its pods are gone.
func outOfService(n *v1.Node) bool {
	if n == nil {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == v1.TaintNodeOutOfService && t.Effect == v1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}
