package binder

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"volplane/internal/controller"
	"volplane/internal/controller/podindex"
	"volplane/internal/keylock"
	"volplane/internal/logging"
	"volplane/internal/volumematch"
)

// Name is the controller's name in the manager, upstream's.
const Name = "persistentvolume-binder"

// Descriptor returns the manager's descriptor for a controller with cfg.
func Descriptor(cfg Config) controller.Descriptor {
	return controller.Descriptor{
		Name: Name,
		Init: func(ctx context.Context, cctx *controller.Context) (controller.Controller, error) {
			c := cfg
			if c.Workers == 0 {
				c.Workers = cctx.Workers
			}
			return New(ctx, c, cctx.Client, cctx.Informers, cctx.Recorder(Component), cctx.Metrics)
		},
	}
}

// Controller is volplane's PV controller. See the package documentation.
type Controller struct {
	cfg      Config
	client   kubernetes.Interface
	recorder record.EventRecorder
	classes  storagelisters.StorageClassLister
	pods     cache.Indexer

	store        *store
	claimQueue   keyQueue
	volumeQueue  keyQueue
	bindQueue    keyQueue
	batcher      *batcher
	locks        *keylock.Locks
	ops          *operations
	provisioners map[string]Provisioner
	recycler     Recycler
	metrics      *metrics
	now          func() time.Time

	synced []cache.InformerSynced
}

// deps are what newController needs; New takes them from informers, the
// tests build them by hand.
type deps struct {
	client   kubernetes.Interface
	recorder record.EventRecorder
	classes  storagelisters.StorageClassLister
	pods     cache.Indexer
	queues   func(name string) keyQueue
	inline   bool
	metrics  prometheus.Registerer
}

// New builds the controller and registers its informers on factory.
func New(ctx context.Context, cfg Config, client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, reg prometheus.Registerer) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pvInformer := factory.Core().V1().PersistentVolumes().Informer()
	pvcInformer := factory.Core().V1().PersistentVolumeClaims().Informer()
	classInformer := factory.Storage().V1().StorageClasses()
	podInformer := factory.Core().V1().Pods().Informer()
	if err := podindex.Add(podInformer); err != nil {
		return nil, err
	}
	c, err := newController(cfg, deps{
		client:   client,
		recorder: recorder,
		classes:  classInformer.Lister(),
		pods:     podInformer.GetIndexer(),
		queues:   newWorkQueue,
		metrics:  reg,
	})
	if err != nil {
		return nil, err
	}
	pvReg, err := pvInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onVolume,
		UpdateFunc: func(_, obj any) { c.onVolume(obj) },
		DeleteFunc: c.onVolumeDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: volume handler: %w", Name, err)
	}
	pvcReg, err := pvcInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onClaim,
		UpdateFunc: func(_, obj any) { c.onClaim(obj) },
		DeleteFunc: c.onClaimDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: claim handler: %w", Name, err)
	}
	// Pods are only read (recycling, WaitForPodScheduled events): no pod
	// event needs a sync.
	c.synced = []cache.InformerSynced{
		pvReg.HasSynced, pvcReg.HasSynced,
		classInformer.Informer().HasSynced, podInformer.HasSynced,
	}
	return c, nil
}

func newController(cfg Config, d deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	c := &Controller{
		cfg:          cfg,
		client:       d.client,
		recorder:     d.recorder,
		classes:      d.classes,
		pods:         d.pods,
		store:        newStore(),
		claimQueue:   d.queues("claims"),
		volumeQueue:  d.queues("volumes"),
		bindQueue:    d.queues("binds"),
		batcher:      newBatcher(cfg.BurstGap),
		locks:        keylock.New(),
		ops:          newOperations(cfg.OperationBackoff, cfg.OperationMaxBackoff, d.inline),
		provisioners: map[string]Provisioner{},
		recycler:     cfg.Recycler,
		now:          time.Now,
	}
	for _, p := range cfg.Provisioners {
		c.provisioners[p.Name()] = p
	}
	if cfg.HostPathProvisionerDir != "" {
		if _, ok := c.provisioners[HostPathProvisionerName]; !ok {
			c.provisioners[HostPathProvisionerName] = NewHostPathProvisioner(cfg.HostPathProvisionerDir)
		}
	}
	if c.recycler == nil {
		c.recycler = NewPodRecycler(d.client, cfg.RecyclerPod)
	}
	m, err := newMetrics(c, d.metrics)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	c.metrics = m
	return c, nil
}

// Run syncs claims and volumes until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	log := logging.FromContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	log.Info("starting persistent volume controller", "workers", c.cfg.Workers, "bindWorkers", c.cfg.BindWorkers,
		"settleWindow", c.cfg.SettleWindow, "maxSettleDelay", c.cfg.MaxSettleDelay)

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() { c.runWorker(ctx, c.claimQueue, "claim", c.syncClaimKey) })
		wg.Go(func() { c.runWorker(ctx, c.volumeQueue, "volume", c.syncVolumeKey) })
	}
	for range c.cfg.BindWorkers {
		wg.Go(func() { c.runWorker(ctx, c.bindQueue, "bind", c.processDecision) })
	}
	wg.Go(func() { c.runMatcher(ctx) })
	wg.Go(func() { c.runResync(ctx) })

	<-ctx.Done()
	c.claimQueue.ShutDown()
	c.volumeQueue.ShutDown()
	c.bindQueue.ShutDown()
	c.batcher.wakeUp()
	wg.Wait()
	c.ops.Wait()
	log.Info("persistent volume controller stopped")
}

func (c *Controller) runWorker(ctx context.Context, q keyQueue, kind string, sync func(context.Context, string) error) {
	ctx = logging.NewContext(ctx, logging.FromContext(ctx).With("kind", kind))
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		c.process(ctx, q, kind, key, sync)
		q.Done(key)
	}
}

// process runs one sync, requeueing the key with backoff when it fails,
// and counts it.
func (c *Controller) process(ctx context.Context, q keyQueue, kind, key string, sync func(context.Context, string) error) {
	err := controller.Process(ctx, q, key, sync)
	c.metrics.syncs.WithLabelValues(kind, result(err)).Inc()
}

func (c *Controller) runResync(ctx context.Context) {
	t := time.NewTicker(c.cfg.ResyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.resync()
		}
	}
}

// resync queues every known claim and volume, as upstream's periodic sync
// does: it retries claims that found no volume and volumes whose reclaim
// failed.
func (c *Controller) resync() {
	vols, claims := c.store.keys()
	for _, k := range claims {
		c.claimQueue.Add(k)
	}
	for _, n := range vols {
		c.volumeQueue.Add(n)
	}
}

// Informer handlers. They keep the store current and queue what changed;
// versions the store already has (the controller's own writes coming back)
// queue nothing.

func (c *Controller) onVolume(obj any) {
	pv, ok := obj.(*v1.PersistentVolume)
	if !ok {
		return
	}
	changed, arrived := c.store.putVolume(pv, false)
	if !changed {
		return
	}
	c.volumeQueue.Add(pv.Name)
	if arrived {
		c.batcher.volumeArrived(volumematch.VolumeGroup(pv), c.now())
	}
}

func (c *Controller) onVolumeDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pv, ok := obj.(*v1.PersistentVolume)
	if !ok {
		return
	}
	if old := c.store.deleteVolume(pv.Name); old != nil {
		pv = old
	}
	// A bound claim whose volume is gone becomes Lost; sync it now rather
	// than at the next resync.
	if pv.Spec.ClaimRef != nil {
		c.claimQueue.Add(claimRefKey(pv.Spec.ClaimRef))
	}
}

func (c *Controller) onClaim(obj any) {
	claim, ok := obj.(*v1.PersistentVolumeClaim)
	if !ok {
		return
	}
	if c.store.putClaim(claim, false, c.now()) {
		c.claimQueue.Add(claimKey(claim))
	}
}

func (c *Controller) onClaimDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	claim, ok := obj.(*v1.PersistentVolumeClaim)
	if !ok {
		return
	}
	key := claimKey(claim)
	if old := c.store.deleteClaim(key); old != nil {
		claim = old
	}
	c.batcher.forget(key)
	// Its volume is released: sync it now. So are volumes a bind had
	// only started to point at it.
	if claim.Spec.VolumeName != "" {
		c.volumeQueue.Add(claim.Spec.VolumeName)
	}
	for _, pv := range c.store.volumesNaming(key) {
		c.volumeQueue.Add(pv.Name)
	}
}
