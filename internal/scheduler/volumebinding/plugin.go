package volumebinding

import (
	"context"
	"errors"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-helpers/storage/ephemeral"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the scheduler's registry and profile.
const Name = "VolplaneVolumeBinding"

const stateKey fwk.StateKey = Name

// Plugin is the binding plugin. See the package doc.
type Plugin struct {
	args       Args
	client     kubernetes.Interface
	pods       corelisters.PodLister
	nodes      corelisters.NodeLister
	claims     corelisters.PersistentVolumeClaimLister
	classes    storagelisters.StorageClassLister
	drivers    storagelisters.CSIDriverLister
	capacities storagelisters.CSIStorageCapacityLister
	volumes    *volumeCache
	// volumesSynced reports whether the volume cache has seen the
	// informer's initial list (the scheduler only waits for the
	// informer's own store).
	volumesSynced cache.InformerSynced
	sig           *signal
	// activator moves pods back to the scheduling queue (the scheduler's
	// queue; nil in tests that do not need it).
	activator fwk.PodActivator

	mu sync.Mutex
	// selected: claim "namespace/name" -> the node Reserve chose for its
	// provisioning, until PreBind has written it or the pod is unreserved.
	selected map[string]string
	// rejected: pods Filter turned away since the volume cache's
	// generation last grew ("namespace/name"), for the next growth to
	// activate.
	rejected map[string]*v1.Pod
}

var (
	_ fwk.PreFilterPlugin   = (*Plugin)(nil)
	_ fwk.FilterPlugin      = (*Plugin)(nil)
	_ fwk.ReservePlugin     = (*Plugin)(nil)
	_ fwk.PreBindPlugin     = (*Plugin)(nil)
	_ fwk.PreScorePlugin    = (*Plugin)(nil)
	_ fwk.ScorePlugin       = (*Plugin)(nil)
	_ fwk.EnqueueExtensions = (*Plugin)(nil)
	_ fwk.SignPlugin        = (*Plugin)(nil)
)

// Factory returns the plugin factory to register under Name
// (controlplane.SchedulerPlugin{Name: Name, Factory: Factory(args)}).
// The scheduler's own plugin configuration is not read: args carry it.
func Factory(args Args) func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
	return func(ctx context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		return New(args, fh)
	}
}

// New builds the plugin on the scheduler's informers and client.
func New(args Args, fh fwk.Handle) (*Plugin, error) {
	args = args.withDefaults()
	if err := args.Validate(); err != nil {
		return nil, err
	}
	p, err := newPlugin(args, fh.ClientSet(), fh.SharedInformerFactory())
	if err != nil {
		return nil, err
	}
	p.activator = fh
	return p, nil
}

// newPlugin builds the plugin on a client and informer factory (the
// scheduler's, or a test's).
func newPlugin(args Args, client kubernetes.Interface, f informers.SharedInformerFactory) (*Plugin, error) {
	p := &Plugin{
		args:       args,
		client:     client,
		pods:       f.Core().V1().Pods().Lister(),
		nodes:      f.Core().V1().Nodes().Lister(),
		claims:     f.Core().V1().PersistentVolumeClaims().Lister(),
		classes:    f.Storage().V1().StorageClasses().Lister(),
		drivers:    f.Storage().V1().CSIDrivers().Lister(),
		capacities: f.Storage().V1().CSIStorageCapacities().Lister(),
		volumes:    newVolumeCache(),
		sig:        newSignal(),
		selected:   map[string]string{},
		rejected:   map[string]*v1.Pod{},
	}
	reg, err := f.Core().V1().PersistentVolumes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.volumeChanged(obj) },
		UpdateFunc: func(_, obj any) { p.volumeChanged(obj) },
		DeleteFunc: func(obj any) { p.volumeDeleted(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("volume binding: %w", err)
	}
	p.volumesSynced = reg.HasSynced
	if _, err := f.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.claimChanged(obj) },
		UpdateFunc: func(_, obj any) { p.claimChanged(obj) },
		DeleteFunc: func(obj any) { p.claimChanged(obj) },
	}); err != nil {
		return nil, fmt.Errorf("volume binding: %w", err)
	}
	return p, nil
}

func (p *Plugin) claimChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if claim, ok := obj.(*v1.PersistentVolumeClaim); ok {
		p.sig.notify(claimSignalKey(claim.Namespace, claim.Name))
	}
}

// notifyVolume wakes the waiters of a volume and of the claim it names
// (a provisioned volume appears under its claim's key).
func (p *Plugin) notifyVolume(pv *v1.PersistentVolume) {
	p.sig.notify(volumeSignalKey(pv.Name))
	if ref := pv.Spec.ClaimRef; ref != nil {
		p.sig.notify(claimSignalKey(ref.Namespace, ref.Name))
	}
}

func (p *Plugin) volumeChanged(obj any) {
	if pv, ok := obj.(*v1.PersistentVolume); ok {
		grew := p.volumes.update(pv)
		p.notifyVolume(pv)
		if grew {
			p.activateRejected()
		}
	}
}

func (p *Plugin) volumeDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pv, ok := obj.(*v1.PersistentVolume); ok {
		p.volumes.remove(pv.Name)
		p.notifyVolume(pv)
	}
}

// The scheduler's queue and this plugin's volume cache are two handlers
// of one volume informer, run apart: a new volume can requeue a pod this
// plugin turned away before the cache has taken the volume in, so the
// pod is turned away again and waits for the next event, which may not
// come (e2e one-volume-two-pods waited two minutes). So a change of the
// cache that can make a pod fit (a volume becoming bindable or pre-bound
// to a claim; the cache's generation) activates the pods Filter turned
// away since the last one, and a pod turned away in a cycle that began
// before such a change is activated at once: every pod rejected for its
// volumes is looked at again once the cache has every volume its queue
// event announced. Volumes bound or deleted activate nothing: they only
// take choices away, and the queue's own handler requeues for them, with
// backoff, as upstream.

// noteRejected remembers pod, turned away by Filter in a cycle that
// began at cache generation gen.
func (p *Plugin) noteRejected(pod *v1.Pod, gen uint64) {
	if p.activator == nil {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	p.mu.Lock()
	stale := p.volumes.generation() != gen
	if !stale {
		p.rejected[key] = pod
	}
	p.mu.Unlock()
	if stale {
		p.activator.Activate(klog.Background(), map[string]*v1.Pod{key: pod})
	}
}

// activateRejected moves the pods turned away since the cache last grew
// back to the queue.
func (p *Plugin) activateRejected() {
	if p.activator == nil {
		return
	}
	p.mu.Lock()
	pods := p.rejected
	if len(pods) > 0 {
		p.rejected = map[string]*v1.Pod{}
	}
	p.mu.Unlock()
	if len(pods) > 0 {
		p.activator.Activate(klog.Background(), pods)
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// SignPod lets pods with the same volumes share scheduling results, as
// upstream's VolumeBinding signs them.
func (p *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.VolumesSignerName, Value: fwk.VolumesSigner(pod)}}, nil
}

// stateData is the plugin's per-pod cycle state, made in PreFilter. It
// is shared, not copied, between Filter's parallel calls, hence the lock.
type stateData struct {
	mu     sync.Mutex
	claims *podClaims
	// gen is the volume cache's generation when the cycle began.
	gen       uint64
	byNode    map[string]*nodeVolumes
	hasStatic bool
	// After Reserve: whether nothing is left to bind, and what was
	// assumed for the chosen node.
	allBound bool
	reserved *reservation
}

func (d *stateData) Clone() fwk.StateData { return d }

func readState(cs fwk.CycleState) (*stateData, error) {
	s, err := cs.Read(stateKey)
	if err != nil {
		return nil, err
	}
	d, ok := s.(*stateData)
	if !ok {
		return nil, fmt.Errorf("volume binding: cycle state holds %T", s)
	}
	return d, nil
}

// claimError is a claim the pod cannot use as it is: the pod is
// unschedulable until the claim changes. Its text is upstream's.
type claimError struct{ msg string }

func (e *claimError) Error() string { return e.msg }

func claimErrorf(format string, args ...any) error {
	return &claimError{msg: fmt.Sprintf(format, args...)}
}

// podClaims looks up the pod's claims and sorts them. It returns
// ok=false when the pod has none, and the number of unbound claims that
// are not the scheduler's to bind (Immediate classes, or naming their
// volume).
func (p *Plugin) podClaims(pod *v1.Pod) (*podClaims, int, bool, error) {
	out := &podClaims{}
	immediate, hasClaims := 0, false
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		var name string
		switch {
		case vol.PersistentVolumeClaim != nil:
			name = vol.PersistentVolumeClaim.ClaimName
		case vol.Ephemeral != nil:
			name = ephemeral.VolumeClaimName(pod, vol)
		default:
			continue
		}
		hasClaims = true
		claim, err := p.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) && vol.Ephemeral != nil {
			// Normal for a moment after the pod is created; upstream's words.
			return nil, 0, true, claimErrorf("waiting for ephemeral volume controller to create the persistentvolumeclaim %q", name)
		} else if apierrors.IsNotFound(err) {
			return nil, 0, true, claimErrorf("persistentvolumeclaim %q not found", name)
		} else if err != nil {
			return nil, 0, true, err
		}
		if claim.Status.Phase == v1.ClaimLost {
			return nil, 0, true, claimErrorf("persistentvolumeclaim %q bound to non-existent persistentvolume %q", name, claim.Spec.VolumeName)
		}
		if claim.DeletionTimestamp != nil {
			return nil, 0, true, claimErrorf("persistentvolumeclaim %q is being deleted", name)
		}
		if vol.Ephemeral != nil {
			if err := ephemeral.VolumeIsForPod(pod, claim); err != nil {
				return nil, 0, true, claimErrorf("%s", err.Error())
			}
		}
		if fullyBound(claim) {
			out.bound = append(out.bound, claim)
			continue
		}
		delay, err := storagehelpers.IsDelayBindingMode(claim, p.classes)
		if err != nil {
			return nil, 0, true, err
		}
		if delay && claim.Spec.VolumeName == "" {
			out.delayed = append(out.delayed, claim)
		} else {
			immediate++
		}
	}
	return out, immediate, hasClaims, nil
}

// fullyBound: the PV controller has finished binding the claim.
func fullyBound(claim *v1.PersistentVolumeClaim) bool {
	_, done := claim.Annotations[storagehelpers.AnnBindCompleted]
	return claim.Spec.VolumeName != "" && done
}

// PreFilter sorts the pod's claims; a pod with unbound claims of
// Immediate classes waits for the PV controller.
func (p *Plugin) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if !p.volumesSynced() && !cache.WaitForCacheSync(ctx.Done(), p.volumesSynced) {
		return nil, fwk.AsStatus(fmt.Errorf("volume binding: the volume cache did not sync: %w", context.Cause(ctx)))
	}
	claims, immediate, hasClaims, err := p.podClaims(pod)
	var unusable *claimError
	switch {
	case errors.As(err, &unusable):
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, unusable.msg)
	case err != nil:
		return nil, fwk.AsStatus(err)
	case !hasClaims:
		cs.Write(stateKey, &stateData{allBound: true})
		return nil, fwk.NewStatus(fwk.Skip)
	case immediate > 0:
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonUnboundImmediate)
	}
	cs.Write(stateKey, &stateData{claims: claims, byNode: map[string]*nodeVolumes{}, gen: p.volumes.generation()})
	return nil, nil
}

// PreFilterExtensions: none (other pods do not change the answer).
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter checks the node against the pod's claims (findPodVolumes).
func (p *Plugin) Filter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := nodeInfo.Node()
	nv, reasons, err := findPodVolumes(pluginWorld{p}, s.claims, node, p.selectedNode)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if len(reasons) > 0 {
		p.noteRejected(pod, s.gen)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reasons...)
	}
	s.mu.Lock()
	s.byNode[node.Name] = nv
	s.hasStatic = s.hasStatic || len(nv.bindings) > 0
	s.mu.Unlock()
	return nil
}

// selectedNode is the node a claim is being provisioned for: Reserve's
// choice not yet written, else the claim's annotation.
func (p *Plugin) selectedNode(claim *v1.PersistentVolumeClaim) string {
	p.mu.Lock()
	n, ok := p.selected[claim.Namespace+"/"+claim.Name]
	p.mu.Unlock()
	if ok {
		return n
	}
	return claim.Annotations[storagehelpers.AnnSelectedNode]
}

// PreScore skips scoring when it is turned off.
func (p *Plugin) PreScore(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if p.args.NoScore {
		return fwk.NewStatus(fwk.Skip)
	}
	if _, err := readState(cs); err != nil {
		return fwk.AsStatus(err)
	}
	return nil
}

// Score rates the node by how much of the chosen volumes (or the
// capacity that admits provisioning) the pod's claims would use.
func (p *Plugin) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := readState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	s.mu.Lock()
	nv := s.byNode[nodeInfo.Node().Name]
	s.mu.Unlock()
	if nv == nil {
		return 0, nil
	}
	return score(p.args.Shape, volumeUse(nv)), nil
}

// ScoreExtensions: none.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return nil }

// pluginWorld is the world findPodVolumes reads in the scheduler.
type pluginWorld struct{ p *Plugin }

func (w pluginWorld) volume(name string) *v1.PersistentVolume { return w.p.volumes.get(name) }

func (w pluginWorld) prebound(claim *v1.PersistentVolumeClaim) []*v1.PersistentVolume {
	return w.p.volumes.preboundTo(claim)
}

func (w pluginWorld) best(claim *v1.PersistentVolumeClaim, node *v1.Node, taken func(*v1.PersistentVolume) bool) (*v1.PersistentVolume, error) {
	return w.p.volumes.best(claim, node, taken)
}

func (w pluginWorld) class(name string) (*storagev1.StorageClass, error) {
	return w.p.classes.Get(name)
}

func (w pluginWorld) driver(name string) *storagev1.CSIDriver {
	d, err := w.p.drivers.Get(name)
	if err != nil {
		return nil
	}
	return d
}

func (w pluginWorld) capacities(class string) []*storagev1.CSIStorageCapacity {
	all, err := w.p.capacities.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*storagev1.CSIStorageCapacity
	for _, c := range all {
		if c.StorageClassName == class {
			out = append(out, c)
		}
	}
	return out
}
