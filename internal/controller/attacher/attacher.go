package attacher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
)

// CSI is the part of a CSI driver the attacher calls.
type CSI interface {
	ControllerPublish(ctx context.Context, r *client.PublishRequest) (map[string]string, error)
	ControllerUnpublish(ctx context.Context, volumeID, nodeID string, secrets map[string]string) error
}

var _ CSI = (*client.Client)(nil)

// Config configures the attacher of one CSI driver.
type Config struct {
	// Driver is the CSI driver's name; VolumeAttachments whose
	// spec.attacher names it are this controller's.
	Driver string
	// CSI reaches the driver; Capabilities are the driver's.
	CSI          CSI
	Capabilities client.Capabilities
	// Client and Informers come from the controller manager.
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	// Workers sync VolumeAttachments; default 4.
	Workers int
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Driver == "" || c.CSI == nil || c.Client == nil || c.Informers == nil {
		return errors.New("csi attacher: Driver, CSI, Client and Informers are required")
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	return nil
}

// Controller is the attacher of one CSI driver.
type Controller struct {
	cfg         Config
	finalizer   string
	legacy      string // the finalizer's older name, removed where found
	attachments storagelisters.VolumeAttachmentLister
	volumes     corelisters.PersistentVolumeLister
	csiNodes    storagelisters.CSINodeLister
	queue       workqueue.TypedRateLimitingInterface[string]
}

// Queue keys: a VolumeAttachment, or a PV whose finalizer may be due to
// come off.
const (
	keyAttachment = "va/"
	keyVolume     = "pv/"
)

// New builds the attacher and registers its informers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := cfg.Informers
	c := &Controller{
		cfg:         cfg,
		finalizer:   kube.AttacherFinalizer(cfg.Driver),
		legacy:      kube.LegacyAttacherFinalizer(cfg.Driver),
		attachments: f.Storage().V1().VolumeAttachments().Lister(),
		volumes:     f.Core().V1().PersistentVolumes().Lister(),
		csiNodes:    f.Storage().V1().CSINodes().Lister(),
		queue:       controller.NewCSIQueue("csi-attacher"),
	}
	onVA := func(obj any) {
		if va, ok := obj.(*storagev1.VolumeAttachment); ok && va.Spec.Attacher == cfg.Driver {
			c.queue.Add(keyAttachment + va.Name)
		}
	}
	if _, err := f.Storage().V1().VolumeAttachments().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onVA,
		UpdateFunc: func(_, obj any) { onVA(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if va, ok := obj.(*storagev1.VolumeAttachment); ok && va.Spec.Source.PersistentVolumeName != nil && va.Spec.Attacher == cfg.Driver {
				c.queue.Add(keyVolume + *va.Spec.Source.PersistentVolumeName)
			}
		},
	}); err != nil {
		return nil, err
	}
	onPV := func(obj any) {
		if pv, ok := obj.(*v1.PersistentVolume); ok && c.hasFinalizer(pv.Finalizers) {
			c.queue.Add(keyVolume + pv.Name)
		}
	}
	if _, err := f.Core().V1().PersistentVolumes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPV,
		UpdateFunc: func(_, obj any) { onPV(obj) },
	}); err != nil {
		return nil, err
	}
	f.Storage().V1().CSINodes().Informer()
	return c, nil
}

// Run syncs until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < c.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, quit := c.queue.Get()
				if quit {
					return
				}
				_ = controller.Process(ctx, c.queue, key, c.sync)
				c.queue.Done(key)
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *Controller) sync(ctx context.Context, key string) error {
	switch {
	case strings.HasPrefix(key, keyAttachment):
		return c.syncAttachment(ctx, strings.TrimPrefix(key, keyAttachment))
	case strings.HasPrefix(key, keyVolume):
		return c.syncVolume(ctx, strings.TrimPrefix(key, keyVolume))
	}
	return fmt.Errorf("unknown key %q", key)
}
