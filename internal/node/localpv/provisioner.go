package localpv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops"
	"volplane/internal/logging"
)

// Event reasons on the PVs.
const (
	// ReasonCleanup: a released volume's contents are being removed.
	ReasonCleanup = "VolumeCleanup"
	// ReasonDeleted: the PV was deleted, after a scrub or because its
	// unbound mount point is gone.
	ReasonDeleted = "VolumeDeleted"
	// ReasonFailedDelete: scrubbing or deleting failed (upstream's
	// reason); retried on the next pass.
	ReasonFailedDelete = "VolumeFailedDelete"
	// ReasonInUse: a released volume is still mounted or named by a pod,
	// so it is not scrubbed yet.
	ReasonInUse = "VolumeInUse"
	// ReasonMissing: the mount point of a bound or released PV is gone.
	ReasonMissing = "VolumeMissing"
)

// EventComponent is the source of the provisioner's events.
const EventComponent = "local-volume-provisioner"

type provisioner struct {
	cfg      Config
	owner    Owner
	pvs      corelisters.PersistentVolumeLister
	recorder record.EventRecorder
	trigger  chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	cleaning map[string]bool    // PV names being scrubbed
	reported map[types.UID]bool // PVs warned about (missing, in use)
}

// Run runs the provisioner until ctx is done. It waits for the Node,
// then makes a PV of every mount point directly under the discovery
// dir, scrubs and deletes the released ones, and deletes the unbound PVs
// whose mount point is gone. A pass runs on every change in the
// directory (fsnotify), every PV change, and every cfg.Rescan. ready is
// called once the first pass is done.
func Run(ctx context.Context, cfg Config, ready func()) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := logging.FromContext(ctx).With("component", "local-provisioner", "node", cfg.NodeName, "dir", cfg.DiscoveryDir)
	ctx = logging.NewContext(ctx, log)

	owner, err := ownerOf(ctx, cfg)
	if err != nil {
		return err
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("local provisioner: %w", err)
	}
	defer watcher.Close()
	if err := watcher.Add(cfg.DiscoveryDir); err != nil {
		return fmt.Errorf("local provisioner: watch %s: %w", cfg.DiscoveryDir, err)
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	defer factory.Shutdown()
	pvInformer := factory.Core().V1().PersistentVolumes()
	p := &provisioner{
		cfg:      cfg,
		owner:    owner,
		pvs:      pvInformer.Lister(),
		recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: cfg.NodeName}),
		trigger:  make(chan struct{}, 1),
		cleaning: map[string]bool{},
		reported: map[types.UID]bool{},
	}
	if _, err := pvInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.kick() },
		UpdateFunc: func(any, any) { p.kick() },
		DeleteFunc: func(any) { p.kick() },
	}); err != nil {
		return fmt.Errorf("local provisioner: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pvInformer.Informer().HasSynced) {
		return nil
	}
	defer p.wg.Wait()

	p.pass(ctx)
	log.Info("local static provisioner running", "class", owner.Class, "provisioner", owner.Provisioner)
	ready()
	tick := time.NewTicker(cfg.Rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-tick.C:
		case ev := <-watcher.Events:
			log.Debug("discovery dir changed", "event", ev.String())
		case err := <-watcher.Errors:
			log.Warn("watching the discovery dir", "err", err)
		}
		p.pass(ctx)
	}
}

// ownerOf waits for the Node (its UID names the provisioner) and reads
// the class's reclaim policy.
func ownerOf(ctx context.Context, cfg Config) (Owner, error) {
	log := logging.FromContext(ctx)
	var node *corev1.Node
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := cfg.Client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			log.Debug("waiting for the Node", "err", err)
			return false, nil
		}
		node = n
		return true, nil
	})
	if err != nil {
		return Owner{}, fmt.Errorf("local provisioner: waiting for Node %s: %w", cfg.NodeName, err)
	}
	o := Owner{
		Node:          cfg.NodeName,
		Provisioner:   ProvisionerName(node.Name, node.UID),
		Class:         cfg.StorageClass,
		ReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
	}
	class, err := cfg.Client.StorageV1().StorageClasses().Get(ctx, cfg.StorageClass, metav1.GetOptions{})
	switch {
	case err != nil:
		// `up` makes the class; on a joining node it is the cluster
		// admin's (the provisioner may only read classes).
		log.Warn("cannot read the local PVs' storage class; their reclaim policy is Delete. Create the class with provisioner kubernetes.io/no-provisioner and volumeBindingMode WaitForFirstConsumer", "class", cfg.StorageClass, "err", err)
	case class.ReclaimPolicy != nil && *class.ReclaimPolicy == corev1.PersistentVolumeReclaimRetain:
		o.ReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	return o, nil
}

func (p *provisioner) kick() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// pass is one discovery pass: the mount table against the PVs.
func (p *provisioner) pass(ctx context.Context) {
	log := logging.FromContext(ctx)
	table, err := p.cfg.Host.Mounts()
	if err != nil {
		log.Error("reading the mount table", "err", err)
		return
	}
	var volumes []Volume
	for _, path := range mountsUnder(p.cfg.DiscoveryDir, table) {
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			log.Warn("statfs of a mount point", "path", path, "err", err)
			continue
		}
		volumes = append(volumes, Volume{Path: path, Capacity: int64(st.Blocks) * st.Frsize})
	}
	pvs, err := p.pvs.List(labels.Everything())
	if err != nil {
		log.Error("listing PVs", "err", err)
		return
	}
	pl := plan(p.owner, p.cfg.DiscoveryDir, volumes, pvs)

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pv := range pl.Create {
		if p.cleaning[pv.Name] {
			continue
		}
		_, err := p.cfg.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
		case err != nil:
			log.Error("creating a local PV", "pv", pv.Name, "path", pv.Spec.Local.Path, "err", err)
		default:
			log.Info("created a local PV", "pv", pv.Name, "path", pv.Spec.Local.Path, "capacity", pv.Spec.Capacity.Storage().String())
		}
	}
	for _, pv := range pl.Delete {
		if err := p.deletePV(ctx, pv); err != nil {
			log.Error("deleting the PV of a vanished mount point", "pv", pv.Name, "err", err)
			continue
		}
		p.recorder.Eventf(pv, corev1.EventTypeNormal, ReasonDeleted, "Mount point %s is gone; deleted the unbound volume", pv.Spec.Local.Path)
		log.Info("deleted the PV of a vanished mount point", "pv", pv.Name, "path", pv.Spec.Local.Path)
	}
	missing := map[types.UID]bool{}
	for _, pv := range pl.Missing {
		missing[pv.UID] = true
		if !p.reported[pv.UID] {
			p.reported[pv.UID] = true
			p.recorder.Eventf(pv, corev1.EventTypeWarning, ReasonMissing, "Mount point %s of the %s volume is gone", pv.Spec.Local.Path, phaseWord(pv))
			log.Warn("the mount point of a claimed local PV is gone", "pv", pv.Name, "path", pv.Spec.Local.Path)
		}
	}
	for _, pv := range pl.Release {
		if p.cleaning[pv.Name] {
			continue
		}
		p.cleaning[pv.Name] = true
		p.wg.Go(func() {
			p.release(ctx, pv, table)
			p.mu.Lock()
			delete(p.cleaning, pv.Name)
			p.mu.Unlock()
		})
	}
	// A PV reported once is reported again only after it recovered.
	for uid := range p.reported {
		if !missing[uid] && !p.releasing(uid, pl.Release) {
			delete(p.reported, uid)
		}
	}
}

func (p *provisioner) releasing(uid types.UID, pvs []*corev1.PersistentVolume) bool {
	for _, pv := range pvs {
		if pv.UID == uid {
			return true
		}
	}
	return false
}

func phaseWord(pv *corev1.PersistentVolume) string {
	if pv.Status.Phase == corev1.VolumeReleased {
		return "released"
	}
	return "claimed"
}

func (p *provisioner) deletePV(ctx context.Context, pv *corev1.PersistentVolume) error {
	uid := pv.UID
	err := p.cfg.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// release scrubs a released PV's volume and deletes the PV, unless the
// volume is still in use. table is the mount table of the pass.
func (p *provisioner) release(ctx context.Context, pv *corev1.PersistentVolume, table []hostops.MountPoint) {
	log := logging.FromContext(ctx).With("pv", pv.Name, "path", pv.Spec.Local.Path)
	if why, err := p.inUse(ctx, pv, table); err != nil || why != "" {
		if err != nil {
			log.Warn("cannot tell whether a released volume is in use; not scrubbing it", "err", err)
			return
		}
		p.reportOnce(pv, func() {
			p.recorder.Eventf(pv, corev1.EventTypeNormal, ReasonInUse, "Volume is released but %s; it is scrubbed once nothing uses it", why)
			log.Info("released volume still in use; not scrubbing it yet", "why", why)
		})
		return
	}
	// Act on what the API has now: the claim may have been bound again.
	cur, err := p.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	if err != nil || cur.UID != pv.UID || cur.Status.Phase != corev1.VolumeReleased || cur.DeletionTimestamp != nil {
		return
	}
	p.recorder.Eventf(pv, corev1.EventTypeNormal, ReasonCleanup, "Removing the contents of %s", pv.Spec.Local.Path)
	if err := Scrub(ctx, pv.Spec.Local.Path); err != nil {
		p.recorder.Eventf(pv, corev1.EventTypeWarning, ReasonFailedDelete, "Error cleaning PV %q: %v", pv.Name, err)
		log.Error("scrubbing a released volume", "err", err)
		return
	}
	if err := p.deletePV(ctx, cur); err != nil {
		p.recorder.Eventf(pv, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting PV %q: %v", pv.Name, err)
		log.Error("deleting a scrubbed volume", "err", err)
		return
	}
	p.recorder.Eventf(pv, corev1.EventTypeNormal, ReasonDeleted, "Scrubbed %s and deleted the volume; it is discovered again as a new volume", pv.Spec.Local.Path)
	log.Info("released volume scrubbed and deleted")
}

func (p *provisioner) reportOnce(pv *corev1.PersistentVolume, report func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reported[pv.UID] {
		p.reported[pv.UID] = true
		report()
	}
}

// inUse says why pv's volume is in use ("" when it is not): mounted
// elsewhere (a pod's bind mount not torn down yet), listed in the Node's
// volumesInUse, or named by a pod that has not finished.
func (p *provisioner) inUse(ctx context.Context, pv *corev1.PersistentVolume, table []hostops.MountPoint) (string, error) {
	if mountedElsewhere(pv.Spec.Local.Path, table) {
		return "its filesystem is still mounted elsewhere", nil
	}
	node, err := p.cfg.Client.CoreV1().Nodes().Get(ctx, p.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading Node %s: %w", p.cfg.NodeName, err)
	}
	if inUseByNode(node, pv.Name) {
		return "the node lists it in use", nil
	}
	ref := pv.Spec.ClaimRef
	if ref == nil {
		return "", nil
	}
	pods, err := p.cfg.Client.CoreV1().Pods(ref.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		if podUsesClaim(&pods.Items[i], ref.Name) {
			return fmt.Sprintf("pod %s/%s uses claim %s", ref.Namespace, pods.Items[i].Name, ref.Name), nil
		}
	}
	return "", nil
}
