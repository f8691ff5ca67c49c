package volumerestrictions

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Name is the plugin's name in the scheduler's registry and profile.
const Name = "VolplaneVolumeRestrictions"

const stateKey fwk.StateKey = "PreFilter" + Name

// Plugin is the restrictions plugin. See the package doc.
type Plugin struct {
	claims corelisters.PersistentVolumeClaimLister
	shared fwk.SharedLister
}

var (
	_ fwk.PreFilterPlugin     = (*Plugin)(nil)
	_ fwk.PreFilterExtensions = (*Plugin)(nil)
	_ fwk.FilterPlugin        = (*Plugin)(nil)
	_ fwk.EnqueueExtensions   = (*Plugin)(nil)
	_ fwk.SignPlugin          = (*Plugin)(nil)
)

// Factory returns the plugin factory to register under Name. The plugin
// has no arguments.
func Factory() func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
	return func(_ context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		return &Plugin{
			claims: fh.SharedInformerFactory().Core().V1().PersistentVolumeClaims().Lister(),
			shared: fh.SnapshotSharedLister(),
		}, nil
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// SignPod: pods with the same volumes get the same answer.
func (p *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.VolumesSignerName, Value: fwk.VolumesSigner(pod)}}, nil
}

// Clone copies the count (AddPod and RemovePod change it per node
// during preemption); the claim set is never changed after PreFilter.
func (s *state) Clone() fwk.StateData {
	c := *s
	return &c
}

// PreFilter finds the pod's ReadWriteOncePod claims and counts the
// scheduled pods' references to them.
func (p *Plugin) PreFilter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	s := &state{claims: sets.New[string]()}
	for _, name := range podClaimNames(pod) {
		claim, err := p.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
		}
		if err != nil {
			return nil, fwk.AsStatus(err)
		}
		if isReadWriteOncePod(claim) {
			s.claims.Insert(name)
		}
	}
	infos := p.shared.StorageInfos()
	for name := range s.claims {
		if infos.IsPVCUsedByPods(claimKey(pod.Namespace, name)) {
			s.refs++ // at most one pod holds a ReadWriteOncePod claim
		}
	}
	if !s.conflicts() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cs.Write(stateKey, s)
	return nil, nil
}

// PreFilterExtensions: AddPod and RemovePod, for preemption.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return p }

func readState(cs fwk.CycleState) (*state, error) {
	d, err := cs.Read(stateKey)
	if err != nil {
		return nil, fmt.Errorf("volume restrictions: reading %q from cycle state: %w", stateKey, err)
	}
	s, ok := d.(*state)
	if !ok {
		return nil, fmt.Errorf("volume restrictions: cycle state holds %T", d)
	}
	return s, nil
}

// AddPod counts the references of a pod preemption adds back.
func (p *Plugin) AddPod(_ context.Context, cs fwk.CycleState, pod *v1.Pod, add fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	s.refs += s.refsOf(pod.Namespace, add.GetPod())
	return nil
}

// RemovePod drops the references of a pod preemption would evict.
func (p *Plugin) RemovePod(_ context.Context, cs fwk.CycleState, pod *v1.Pod, remove fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	s.refs -= s.refsOf(pod.Namespace, remove.GetPod())
	return nil
}

// Filter rejects the node while another pod holds one of the pod's
// ReadWriteOncePod claims; Unschedulable, so preemption is tried.
func (p *Plugin) Filter(_ context.Context, cs fwk.CycleState, _ *v1.Pod, _ fwk.NodeInfo) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.conflicts() {
		return fwk.NewStatus(fwk.Unschedulable, ReasonReadWriteOncePodConflict)
	}
	return nil
}

// EventsToRegister: upstream's events: a deleted scheduled pod that
// used one of the pod's claims, a new node, the pod's claim created.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: hintPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add}},
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolumeClaim, ActionType: fwk.Add}, QueueingHintFn: hintClaimAdded},
	}, nil
}

func queueIf(b bool) fwk.QueueingHint {
	if b {
		return fwk.Queue
	}
	return fwk.QueueSkip
}

func hintPodDeleted(_ klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, ok := oldObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume restrictions: event object is %T", oldObj)
	}
	return queueIf(sharesClaim(pod, deleted)), nil
}

func hintClaimAdded(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	claim, ok := newObj.(*v1.PersistentVolumeClaim)
	if !ok {
		return fwk.Queue, fmt.Errorf("volume restrictions: event object is %T", newObj)
	}
	return queueIf(usesClaim(pod, claim)), nil
}
