package volumerestrictions

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// ReasonReadWriteOncePodConflict is upstream's reason, word for word.
const ReasonReadWriteOncePodConflict = "node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod"

// claimKey is the key the scheduler's StorageInfos use for a claim.
func claimKey(namespace, name string) string { return namespace + "/" + name }

// podClaimNames are the names of the claims a pod's volumes refer to
// (claim volumes only; generic ephemeral volumes are never shared).
func podClaimNames(pod *v1.Pod) []string {
	var out []string
	for i := range pod.Spec.Volumes {
		if src := pod.Spec.Volumes[i].PersistentVolumeClaim; src != nil {
			out = append(out, src.ClaimName)
		}
	}
	return out
}

// isReadWriteOncePod reports whether a claim asks for ReadWriteOncePod.
func isReadWriteOncePod(claim *v1.PersistentVolumeClaim) bool {
	return slices.Contains(claim.Spec.AccessModes, v1.ReadWriteOncePod)
}

// state is what PreFilter computes: the pod's ReadWriteOncePod claims
// and how many references scheduled pods hold to them.
type state struct {
	claims sets.Set[string]
	refs   int
}

// refsOf counts the references another pod holds to the claims. Pods
// of other namespaces never share a claim.
func (s *state) refsOf(namespace string, other *v1.Pod) int {
	if other.Namespace != namespace {
		return 0
	}
	n := 0
	for _, name := range podClaimNames(other) {
		if s.claims.Has(name) {
			n++
		}
	}
	return n
}

// conflicts reports whether the pod would be a second user of one of
// its ReadWriteOncePod claims.
func (s *state) conflicts() bool { return s != nil && s.refs > 0 }

// sharesClaim reports whether a deleted pod used one of the pod's
// claims (the queueing hint: upstream does not look the claim's access
// mode up there, and neither does volplane).
func sharesClaim(pod, deleted *v1.Pod) bool {
	if pod.Namespace != deleted.Namespace {
		return false
	}
	mine := sets.New(podClaimNames(pod)...)
	return slices.ContainsFunc(podClaimNames(deleted), mine.Has)
}

// usesClaim reports whether a pod refers to a claim of this name in
// its namespace.
func usesClaim(pod *v1.Pod, claim *v1.PersistentVolumeClaim) bool {
	return pod.Namespace == claim.Namespace && slices.Contains(podClaimNames(pod), claim.Name)
}
