package volumebinding

import (
	"context"
	"fmt"
	"reflect"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/component-helpers/storage/ephemeral"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// EventsToRegister names the cluster events that may make a pod this
// plugin rejected schedulable, with hints that skip the ones that
// cannot, so such pods are retried on a relevant change and never by
// polling.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// A class appearing, or its allowedTopologies changing.
		{Event: fwk.ClusterEvent{Resource: fwk.StorageClass, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintStorageClass},
		// The pod's own claims appearing or changing (bound, annotated).
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolumeClaim, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintClaim},
		// A volume appearing, freed or relabelled.
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolume, ActionType: fwk.Add | fwk.Update}},
		// A node appearing or relabelled may match a volume's affinity
		// or a class's topology.
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}},
		// A node's CSI drivers registering.
		{Event: fwk.ClusterEvent{Resource: fwk.CSINode, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintCSINode},
		// Capacity tracking turned on or off.
		{Event: fwk.ClusterEvent{Resource: fwk.CSIDriver, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintCSIDriver},
		// Capacity appearing or growing.
		{Event: fwk.ClusterEvent{Resource: fwk.CSIStorageCapacity, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: hintCapacity},
	}, nil
}

// pair returns an event's old and new objects as T (old is nil for an
// add).
func pair[T any](oldObj, newObj any) (old, cur T, err error) {
	if oldObj != nil {
		o, ok := oldObj.(T)
		if !ok {
			return old, cur, fmt.Errorf("volume binding: event object is %T", oldObj)
		}
		old = o
	}
	c, ok := newObj.(T)
	if !ok {
		return old, cur, fmt.Errorf("volume binding: event object is %T", newObj)
	}
	return old, c, nil
}

func queueIf(b bool) fwk.QueueingHint {
	if b {
		return fwk.Queue
	}
	return fwk.QueueSkip
}

// hintClaim queues the pod when one of its own claims changed.
func hintClaim(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	_, claim, err := pair[*v1.PersistentVolumeClaim](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if claim.Namespace != pod.Namespace {
		return fwk.QueueSkip, nil
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		switch {
		case vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ClaimName == claim.Name:
			return fwk.Queue, nil
		case vol.Ephemeral != nil && ephemeral.VolumeClaimName(pod, vol) == claim.Name:
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// hintStorageClass queues on a new class, and on a change of a class's
// allowedTopologies (the only field that may change).
func hintStorageClass(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := pair[*storagev1.StorageClass](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	return queueIf(old == nil || !reflect.DeepEqual(old.AllowedTopologies, cur.AllowedTopologies)), nil
}

// hintCSINode queues on a new CSINode or a change of its drivers.
func hintCSINode(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := pair[*storagev1.CSINode](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	return queueIf(old == nil || !reflect.DeepEqual(old.Spec.Drivers, cur.Spec.Drivers)), nil
}

// hintCSIDriver queues on a new driver or a change of its
// storageCapacity switch.
func hintCSIDriver(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := pair[*storagev1.CSIDriver](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	return queueIf(old == nil || !reflect.DeepEqual(old.Spec.StorageCapacity, cur.Spec.StorageCapacity)), nil
}

// hintCapacity queues on new capacity, on capacity or maximum volume
// size growing, and on a change of the nodes it reaches.
func hintCapacity(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := pair[*storagev1.CSIStorageCapacity](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if old == nil {
		return fwk.Queue, nil
	}
	return queueIf(grew(old.Capacity, cur.Capacity) || grew(old.MaximumVolumeSize, cur.MaximumVolumeSize) ||
		!reflect.DeepEqual(old.NodeTopology, cur.NodeTopology)), nil
}

// grew reports whether a quantity appeared or increased.
func grew(old, cur *resource.Quantity) bool {
	switch {
	case cur == nil:
		return false
	case old == nil:
		return true
	}
	return cur.Cmp(*old) > 0
}
