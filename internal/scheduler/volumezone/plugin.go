package volumezone

import (
	"context"
	"fmt"
	"reflect"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the scheduler's registry and profile.
const Name = "VolplaneVolumeZone"

const stateKey fwk.StateKey = "PreFilter" + Name

// Plugin is the zone plugin. See the package doc.
type Plugin struct {
	volumes corelisters.PersistentVolumeLister
	claims  corelisters.PersistentVolumeClaimLister
	classes storagelisters.StorageClassLister
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
		f := fh.SharedInformerFactory()
		return &Plugin{
			volumes: f.Core().V1().PersistentVolumes().Lister(),
			claims:  f.Core().V1().PersistentVolumeClaims().Lister(),
			classes: f.Storage().V1().StorageClasses().Lister(),
		}, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// SignPod: pods with the same volumes get the same answer.
func (p *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.VolumesSignerName, Value: fwk.VolumesSigner(pod)}}, nil
}

type stateData struct{ topologies []topology }

func (d *stateData) Clone() fwk.StateData { return d }

// asStatus: a missing object makes the pod unschedulable until it
// appears; other errors are errors.
func asStatus(err error) *fwk.Status {
	if apierrors.IsNotFound(err) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	return fwk.AsStatus(err)
}

// podTopologies collects the zone-like labels of the pod's bound volumes.
func (p *Plugin) podTopologies(pod *v1.Pod) ([]topology, *fwk.Status) {
	var out []topology
	for i := range pod.Spec.Volumes {
		src := pod.Spec.Volumes[i].PersistentVolumeClaim
		if src == nil {
			continue
		}
		if src.ClaimName == "" {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "PersistentVolumeClaim had no name")
		}
		claim, err := p.claims.PersistentVolumeClaims(pod.Namespace).Get(src.ClaimName)
		if err != nil {
			return nil, asStatus(err)
		}
		if claim.Spec.VolumeName == "" {
			className := storagehelpers.GetPersistentVolumeClaimClass(claim)
			if className == "" {
				return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "PersistentVolumeClaim had no pv name and storageClass name")
			}
			class, err := p.classes.Get(className)
			if err != nil {
				return nil, asStatus(err)
			}
			if class.VolumeBindingMode == nil {
				return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("VolumeBindingMode not set for StorageClass %q", className))
			}
			if *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
				continue
			}
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "PersistentVolume had no name")
		}
		pv, err := p.volumes.Get(claim.Spec.VolumeName)
		if err != nil {
			return nil, asStatus(err)
		}
		out = append(out, volumeTopologies(pv)...)
	}
	return out, nil
}

// PreFilter collects the topologies; a pod without any skips Filter.
func (p *Plugin) PreFilter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	topologies, status := p.podTopologies(pod)
	if !status.IsSuccess() {
		return nil, status
	}
	if len(topologies) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cs.Write(stateKey, &stateData{topologies: topologies})
	return nil, nil
}

// PreFilterExtensions: none.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter checks the node's labels against the volumes'.
func (p *Plugin) Filter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	var topologies []topology
	if s, err := cs.Read(stateKey); err == nil {
		d, ok := s.(*stateData)
		if !ok {
			return fwk.AsStatus(fmt.Errorf("volume zone: cycle state holds %T", s))
		}
		topologies = d.topologies
	} else {
		var status *fwk.Status
		if topologies, status = p.podTopologies(pod); !status.IsSuccess() {
			return status
		}
	}
	if !fits(topologies, nodeInfo.Node().Labels) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonConflict)
	}
	return nil
}

// EventsToRegister: a new WaitForFirstConsumer class, a node's labels,
// the pod's claims, volumes and their zone labels.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.StorageClass, ActionType: fwk.Add}, QueueingHintFn: hintClass},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}},
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolumeClaim, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintClaim},
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolume, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintVolume},
	}, nil
}

func queueIf(b bool) fwk.QueueingHint {
	if b {
		return fwk.Queue
	}
	return fwk.QueueSkip
}

func hintClass(_ klog.Logger, _ *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	class, ok := newObj.(*storagev1.StorageClass)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume zone: event object is %T", newObj)
	}
	return queueIf(class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer), nil
}

func hintClaim(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	claim, ok := newObj.(*v1.PersistentVolumeClaim)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume zone: event object is %T", newObj)
	}
	if claim.Namespace != pod.Namespace {
		return fwk.QueueSkip, nil
	}
	for i := range pod.Spec.Volumes {
		if src := pod.Spec.Volumes[i].PersistentVolumeClaim; src != nil && src.ClaimName == claim.Name {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

func hintVolume(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	cur, ok := newObj.(*v1.PersistentVolume)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume zone: event object is %T", newObj)
	}
	old, ok := oldObj.(*v1.PersistentVolume)
	if !ok {
		return fwk.Queue, nil // a new volume
	}
	return queueIf(!reflect.DeepEqual(volumeTopologies(old), volumeTopologies(cur))), nil
}
