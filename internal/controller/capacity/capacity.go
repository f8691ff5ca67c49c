package capacity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"

	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
	"volplane/internal/logging"
)

// Labels on the CSIStorageCapacity objects this controller owns, the keys
// upstream's external-provisioner uses.
const (
	LabelDriver    = "csi.storage.k8s.io/drivername"
	LabelManagedBy = "csi.storage.k8s.io/managed-by"
	// ManagedBy is the managed-by value of volplane's objects.
	ManagedBy = "volplane-csi-controller"
)

// CSI is the part of a CSI driver the controller calls.
type CSI interface {
	GetCapacity(ctx context.Context, r *client.CapacityRequest) (client.Capacity, error)
}

var _ CSI = (*client.Client)(nil)

// Config configures storage capacity tracking of one driver.
type Config struct {
	Driver       string
	CSI          CSI
	Capabilities client.Capabilities
	Client       kubernetes.Interface
	Informers    informers.SharedInformerFactory
	// Namespace holds the CSIStorageCapacity objects; default
	// kube-system.
	Namespace string
	// PollInterval is how often capacity is asked again without a
	// change; default one minute, as upstream.
	PollInterval time.Duration
	// MinInterval is the least time between two passes; default one
	// second. Every volume of the driver created or deleted asks for a
	// pass (GetCapacity per class and segment, an update of each
	// object): in a burst of hundreds of claims that was a pass after
	// another, two API writes each, competing with the provisioning
	// itself. Now a burst costs one pass per MinInterval.
	MinInterval time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Driver == "" || c.CSI == nil || c.Client == nil || c.Informers == nil {
		return errors.New("csi capacity: Driver, CSI, Client and Informers are required")
	}
	if c.Namespace == "" {
		c.Namespace = "kube-system"
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Minute
	}
	if c.MinInterval <= 0 {
		c.MinInterval = time.Second
	}
	return nil
}

// Controller publishes CSIStorageCapacity objects of one driver.
type Controller struct {
	cfg        Config
	classes    storagelisters.StorageClassLister
	nodes      corelisters.NodeLister
	csiNodes   storagelisters.CSINodeLister
	drivers    storagelisters.CSIDriverLister
	capacities storagelisters.CSIStorageCapacityLister
	trigger    chan struct{}
}

// New builds the controller and registers its informers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := cfg.Informers
	c := &Controller{
		cfg:        cfg,
		classes:    f.Storage().V1().StorageClasses().Lister(),
		nodes:      f.Core().V1().Nodes().Lister(),
		csiNodes:   f.Storage().V1().CSINodes().Lister(),
		drivers:    f.Storage().V1().CSIDrivers().Lister(),
		capacities: f.Storage().V1().CSIStorageCapacities().Lister(),
		trigger:    make(chan struct{}, 1),
	}
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(_, _ any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		f.Storage().V1().StorageClasses().Informer(),
		f.Storage().V1().CSINodes().Informer(),
		f.Storage().V1().CSIDrivers().Informer(),
	} {
		if _, err := inf.AddEventHandler(kick); err != nil {
			return nil, err
		}
	}
	f.Core().V1().Nodes().Informer()
	f.Storage().V1().CSIStorageCapacities().Informer()
	// Volumes coming and going change what is left.
	onVolume := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pv, ok := obj.(*v1.PersistentVolume); ok && pv.Spec.CSI != nil && pv.Spec.CSI.Driver == cfg.Driver {
			c.kick()
		}
	}
	if _, err := f.Core().V1().PersistentVolumes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onVolume, DeleteFunc: onVolume,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) kick() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run publishes capacity on every change and every PollInterval until
// ctx is done. A driver without GET_CAPACITY or topology publishes
// nothing.
func (c *Controller) Run(ctx context.Context) {
	if !c.cfg.Capabilities.GetCapacity || !c.cfg.Capabilities.Topology {
		logging.FromContext(ctx).Info("driver reports no capacity per topology; no CSIStorageCapacity objects")
		return
	}
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	c.kick()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.trigger:
		case <-t.C:
		}
		// Changes during the wait are covered by this pass, or kick the
		// next one.
		if wait := c.cfg.MinInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		if err := c.sync(ctx); err != nil && ctx.Err() == nil {
			logging.FromContext(ctx).Warn("publishing storage capacity failed, retrying", "err", err)
		}
	}
}

// key identifies one object: class and topology segment.
type key struct{ class, segment string }

// sync makes the driver's CSIStorageCapacity objects one per class of the
// driver and topology segment of its nodes, with GetCapacity's answer.
// Without a CSIDriver object nothing is published (nothing would own the
// objects, and the scheduler reads capacity only for drivers that have
// one).
func (c *Controller) sync(ctx context.Context) error {
	var errs []error
	want := map[key]*storagev1.CSIStorageCapacity{}
	driverObj, err := c.drivers.Get(c.cfg.Driver)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if driverObj != nil {
		classes, err := c.classes.List(labels.Everything())
		if err != nil {
			return err
		}
		segments, err := c.segments()
		if err != nil {
			return err
		}
		owner := metav1.OwnerReference{APIVersion: "storage.k8s.io/v1", Kind: "CSIDriver", Name: driverObj.Name, UID: driverObj.UID}
		for _, sc := range classes {
			if sc.Provisioner != c.cfg.Driver {
				continue
			}
			for _, seg := range segments {
				obj, err := c.capacity(ctx, sc, seg, owner)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				want[key{sc.Name, kube.SegmentKey(seg)}] = obj
			}
		}
	}

	have, err := c.capacities.CSIStorageCapacities(c.cfg.Namespace).List(labels.SelectorFromSet(labels.Set{
		LabelDriver: c.cfg.Driver, LabelManagedBy: ManagedBy}))
	if err != nil {
		return err
	}
	api := c.cfg.Client.StorageV1().CSIStorageCapacities(c.cfg.Namespace)
	for _, h := range have {
		k := key{h.StorageClassName, selectorKey(h.NodeTopology)}
		w, ok := want[k]
		if !ok {
			if err := api.Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		delete(want, k)
		if sameQuantity(h.Capacity, w.Capacity) && sameQuantity(h.MaximumVolumeSize, w.MaximumVolumeSize) {
			continue
		}
		u := h.DeepCopy()
		u.Capacity, u.MaximumVolumeSize = w.Capacity, w.MaximumVolumeSize
		if _, err := api.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range want {
		if _, err := api.Create(ctx, w, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// capacity asks the driver about one class in one segment.
func (c *Controller) capacity(ctx context.Context, sc *storagev1.StorageClass, seg client.Topology, owner metav1.OwnerReference) (*storagev1.CSIStorageCapacity, error) {
	got, err := c.cfg.CSI.GetCapacity(ctx, &client.CapacityRequest{
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter, FSType: sc.Parameters[kube.ParamFSType]}},
		Parameters:   kube.DriverParameters(sc.Parameters),
		Topology:     seg,
	})
	if err != nil {
		return nil, fmt.Errorf("capacity of class %s in %v: %w", sc.Name, seg, err)
	}
	obj := &storagev1.CSIStorageCapacity{
		ObjectMeta: metav1.ObjectMeta{
			Name:            objectName(c.cfg.Driver, sc.Name, seg),
			Namespace:       c.cfg.Namespace,
			Labels:          map[string]string{LabelDriver: c.cfg.Driver, LabelManagedBy: ManagedBy},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		StorageClassName: sc.Name,
		NodeTopology:     &metav1.LabelSelector{MatchLabels: map[string]string(seg)},
		Capacity:         resource.NewQuantity(got.AvailableBytes, resource.BinarySI),
	}
	if got.MaximumVolumeSize > 0 {
		obj.MaximumVolumeSize = resource.NewQuantity(got.MaximumVolumeSize, resource.BinarySI)
	}
	return obj, nil
}

// segments are the distinct topology segments of the nodes that run the
// driver.
func (c *Controller) segments() ([]client.Topology, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []client.Topology
	for _, n := range nodes {
		csiNode, err := c.csiNodes.Get(n.Name)
		if err != nil {
			continue
		}
		seg, ok := kube.NodeSegment(n, csiNode, c.cfg.Driver)
		if !ok || len(seg) == 0 || seen[kube.SegmentKey(seg)] {
			continue
		}
		seen[kube.SegmentKey(seg)] = true
		out = append(out, seg)
	}
	return out, nil
}

// objectName names the object of a class and segment: fixed, so that a
// sync that does not see its previous create yet makes no second object.
func objectName(driver, class string, seg client.Topology) string {
	sum := sha256.Sum256([]byte(driver + "\x00" + class + "\x00" + kube.SegmentKey(seg)))
	return fmt.Sprintf("csisc-%x", sum[:16])
}

func selectorKey(s *metav1.LabelSelector) string {
	if s == nil {
		return ""
	}
	return kube.SegmentKey(client.Topology(s.MatchLabels))
}

func sameQuantity(a, b *resource.Quantity) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cmp(*b) == 0
}
