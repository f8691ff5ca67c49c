package nodevolumelimits

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-helpers/storage/ephemeral"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the scheduler's registry and profile.
const Name = "VolplaneNodeVolumeLimits"

// byNode indexes VolumeAttachments by spec.nodeName.
const byNode = "volplane.va.spec.nodename"

// Plugin is the limits plugin. See the package doc.
type Plugin struct {
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
	classes  storagelisters.StorageClassLister
	csiNodes storagelisters.CSINodeLister
	vas      cache.Indexer
	// prefix makes the handles of unbound claims' future volumes unique
	// to this scheduler, as upstream does.
	prefix string
}

var (
	_ fwk.PreFilterPlugin   = (*Plugin)(nil)
	_ fwk.FilterPlugin      = (*Plugin)(nil)
	_ fwk.EnqueueExtensions = (*Plugin)(nil)
	_ fwk.SignPlugin        = (*Plugin)(nil)
)

// Factory returns the plugin factory to register under Name. The plugin
// has no arguments.
func Factory() func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
	return func(_ context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		return newPlugin(fh.SharedInformerFactory())
	}
}

func newPlugin(f informers.SharedInformerFactory) (*Plugin, error) {
	vaInformer := f.Storage().V1().VolumeAttachments().Informer()
	err := vaInformer.AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) {
		if va, ok := obj.(*storagev1.VolumeAttachment); ok {
			return []string{va.Spec.NodeName}, nil
		}
		return nil, nil
	}})
	if err != nil && vaInformer.GetIndexer().GetIndexers()[byNode] == nil {
		return nil, fmt.Errorf("volume limits: indexing VolumeAttachments by node: %w", err)
	}
	return &Plugin{
		claims:   f.Core().V1().PersistentVolumeClaims().Lister(),
		volumes:  f.Core().V1().PersistentVolumes().Lister(),
		classes:  f.Storage().V1().StorageClasses().Lister(),
		csiNodes: f.Storage().V1().CSINodes().Lister(),
		vas:      vaInformer.GetIndexer(),
		prefix:   rand.String(32),
	}, nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// SignPod: pods with the same volumes get the same answer.
func (p *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.VolumesSignerName, Value: fwk.VolumesSigner(pod)}}, nil
}

// PreFilter skips Filter for a pod without claim or ephemeral volumes.
func (p *Plugin) PreFilter(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if !countsVolumes(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// PreFilterExtensions: none (the count is made per node in Filter).
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// errNoName is upstream's error for a claim volume without a name.
var errNoName = errors.New("PersistentVolumeClaim had no name")

// podVolumes adds a pod's counted volumes to out. For the pod being
// scheduled a missing claim is an error; for pods on the node it is
// skipped, as upstream does.
func (p *Plugin) podVolumes(pod *v1.Pod, isNew bool, out volumes) error {
	for _, c := range podClaims(pod) {
		if c.name == "" {
			return errNoName
		}
		claim, err := p.claims.PersistentVolumeClaims(pod.Namespace).Get(c.name)
		if err != nil {
			if isNew {
				return fmt.Errorf("looking up PVC %s/%s: %w", pod.Namespace, c.name, err)
			}
			continue
		}
		if c.ephemeral {
			if err := ephemeral.VolumeIsForPod(pod, claim); err != nil {
				return err
			}
		}
		var pv *v1.PersistentVolume
		if claim.Spec.VolumeName != "" {
			pv, _ = p.volumes.Get(claim.Spec.VolumeName) // unknown: counted by its class
		}
		var class *storagev1.StorageClass
		if pv == nil {
			if name := storagehelpers.GetPersistentVolumeClaimClass(claim); name != "" {
				class, _ = p.classes.Get(name) // unknown: not counted
			}
		}
		if driver, handle := claimVolume(claim, pv, class, p.prefix); driver != "" && handle != "" {
			out[uniqueName(driver, handle)] = driver
		}
	}
	return nil
}

// attachments are the volumes of the node's VolumeAttachments.
func (p *Plugin) attachments(node string) (volumes, error) {
	objs, err := p.vas.ByIndex(byNode, node)
	if err != nil {
		return nil, fmt.Errorf("volume limits: VolumeAttachments of node %s: %w", node, err)
	}
	out := volumes{}
	for _, obj := range objs {
		va, ok := obj.(*storagev1.VolumeAttachment)
		if !ok || va.Spec.Source.PersistentVolumeName == nil {
			continue
		}
		pv, _ := p.volumes.Get(*va.Spec.Source.PersistentVolumeName)
		if name, driver, ok := attachmentVolume(va, node, pv); ok {
			out[name] = driver
		}
	}
	return out, nil
}

// Filter counts the node's volumes per driver against its CSINode.
func (p *Plugin) Filter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	node := nodeInfo.Node()
	csiNode, err := p.csiNodes.Get(node.Name)
	if err != nil {
		klog.FromContext(ctx).V(5).Info("No CSINode for the node; no volume limits", "node", node.Name, "err", err)
		csiNode = nil
	}
	newVols := volumes{}
	if err := p.podVolumes(pod, true, newVols); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, errNoName) {
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
		}
		return fwk.AsStatus(err)
	}
	limits := nodeLimits(csiNode)
	if len(newVols) == 0 || len(limits) == 0 {
		return nil
	}
	onNode := volumes{}
	for _, pi := range nodeInfo.GetPods() {
		if err := p.podVolumes(pi.GetPod(), false, onNode); err != nil {
			return fwk.AsStatus(err)
		}
	}
	attached, err := p.attachments(node.Name)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if exceeds(newVols, onNode, attached, limits) {
		return fwk.NewStatus(fwk.Unschedulable, ReasonMaxVolumeCountExceeded)
	}
	return nil
}

// EventsToRegister: upstream's events: a new CSINode or a raised count,
// a deleted scheduled pod with counted volumes, the pod's claim
// created, a deleted VolumeAttachment.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.CSINode, ActionType: fwk.Add}},
		{Event: fwk.ClusterEvent{Resource: fwk.CSINode, ActionType: fwk.Update}, QueueingHintFn: hintCSINodeUpdated},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: hintPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolumeClaim, ActionType: fwk.Add}, QueueingHintFn: hintClaimAdded},
		{Event: fwk.ClusterEvent{Resource: fwk.VolumeAttachment, ActionType: fwk.Delete}, QueueingHintFn: hintAttachmentDeleted},
	}, nil
}

func queueIf(b bool) fwk.QueueingHint {
	if b {
		return fwk.Queue
	}
	return fwk.QueueSkip
}

func hintCSINodeUpdated(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, ok1 := oldObj.(*storagev1.CSINode)
	cur, ok2 := newObj.(*storagev1.CSINode)
	if !ok1 || !ok2 {
		return fwk.Queue, fmt.Errorf("volume limits: event objects are %T, %T", oldObj, newObj)
	}
	return queueIf(limitRaised(old, cur)), nil
}

// hintPodDeleted: a scheduled (or nominated) pod with counted volumes
// may have freed a slot.
func hintPodDeleted(_ klog.Logger, _ *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, ok := oldObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume limits: event object is %T", oldObj)
	}
	placed := deleted.Spec.NodeName != "" || deleted.Status.NominatedNodeName != ""
	return queueIf(placed && countsVolumes(deleted)), nil
}

func hintClaimAdded(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	claim, ok := newObj.(*v1.PersistentVolumeClaim)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume limits: event object is %T", newObj)
	}
	if claim.Namespace != pod.Namespace {
		return fwk.QueueSkip, nil
	}
	for _, c := range podClaims(pod) {
		if c.name == claim.Name {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// hintAttachmentDeleted: as upstream, any deleted attachment may free a
// slot for a pod with claim volumes (upstream does not look the
// attachment's node up, and neither does volplane); also for a pod with
// only generic ephemeral volumes, which upstream's hint leaves waiting.
func hintAttachmentDeleted(_ klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	if _, ok := oldObj.(*storagev1.VolumeAttachment); !ok {
		return fwk.Queue, fmt.Errorf("volume limits: event object is %T", oldObj)
	}
	return queueIf(countsVolumes(pod)), nil
}
