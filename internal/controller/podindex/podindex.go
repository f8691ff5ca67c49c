// Package podindex indexes pods by the claims they use, for the
// controllers that must know whether a claim is in use: the PV controller
// (recycling, WaitForPodScheduled events) and pvc-protection. A pod uses a
// claim through a persistentVolumeClaim volume, or through a generic
// ephemeral volume, whose claim is named "<pod>-<volume>" and is owned by
// the pod.
//
// It may call client-go only.
package podindex

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// ByClaim is the name of the index: pods by "<namespace>/<claim>".
const ByClaim = "volplane-pod-by-claim"

// Add adds the ByClaim index to a shared pod informer, unless present.
// It must be called before the informer starts.
func Add(informer cache.SharedIndexInformer) error {
	if _, ok := informer.GetIndexer().GetIndexers()[ByClaim]; ok {
		return nil
	}
	if err := informer.AddIndexers(Indexers()); err != nil {
		return fmt.Errorf("pod index %s: %w", ByClaim, err)
	}
	return nil
}

// Indexers returns the ByClaim index function, for an indexer of pods.
func Indexers() cache.Indexers {
	return cache.Indexers{ByClaim: func(obj any) ([]string, error) {
		pod, ok := obj.(*v1.Pod)
		if !ok {
			return nil, nil
		}
		return ClaimKeys(pod), nil
	}}
}

// ClaimName is the claim a pod volume refers to, "" for other volumes.
func ClaimName(pod *v1.Pod, vol *v1.Volume) string {
	switch {
	case vol.PersistentVolumeClaim != nil:
		return vol.PersistentVolumeClaim.ClaimName
	case vol.Ephemeral != nil:
		return pod.Name + "-" + vol.Name
	}
	return ""
}

// ClaimKeys returns "<namespace>/<claim>" for every claim the pod refers
// to.
func ClaimKeys(pod *v1.Pod) []string {
	var keys []string
	for i := range pod.Spec.Volumes {
		if n := ClaimName(pod, &pod.Spec.Volumes[i]); n != "" {
			keys = append(keys, pod.Namespace+"/"+n)
		}
	}
	return keys
}

// Pods returns the pods in the indexer that refer to the claim.
func Pods(indexer cache.Indexer, namespace, claim string) ([]*v1.Pod, error) {
	objs, err := indexer.ByIndex(ByClaim, namespace+"/"+claim)
	if err != nil {
		return nil, fmt.Errorf("pods using claim %s/%s: %w", namespace, claim, err)
	}
	pods := make([]*v1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*v1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// Uses reports whether pod refers to claim: by name for a
// persistentVolumeClaim volume; for a generic ephemeral volume only when
// the claim is controlled by the pod, as the kubelet also requires.
func Uses(pod *v1.Pod, claim *v1.PersistentVolumeClaim) bool {
	if pod.Namespace != claim.Namespace {
		return false
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if name := ClaimName(pod, vol); name != "" && name == claim.Name &&
			(vol.PersistentVolumeClaim != nil || metav1.IsControlledBy(claim, pod)) {
			return true
		}
	}
	return false
}

// IsTerminated reports whether the pod will not run (again): Succeeded or
// Failed, or being deleted with no container running.
func IsTerminated(pod *v1.Pod) bool {
	switch pod.Status.Phase {
	case v1.PodSucceeded, v1.PodFailed:
		return true
	}
	return pod.DeletionTimestamp != nil &&
		notRunning(pod.Status.InitContainerStatuses) &&
		notRunning(pod.Status.ContainerStatuses) &&
		notRunning(pod.Status.EphemeralContainerStatuses)
}

func notRunning(statuses []v1.ContainerStatus) bool {
	for _, s := range statuses {
		if s.State.Terminated == nil && s.State.Waiting == nil {
			return false
		}
	}
	return true
}
