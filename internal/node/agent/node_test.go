package agent

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestConditionEvents: the events upstream's kubelet records as it sets
// the Node's conditions (pkg/kubelet/nodestatus setters): a pressure
// condition when it is new or changes, Ready only when an existing one
// changes.
func TestConditionEvents(t *testing.T) {
	cond := func(typ corev1.NodeConditionType, st corev1.ConditionStatus) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: st}
	}
	healthy := []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse),
		cond(corev1.NodeReady, corev1.ConditionTrue),
	}
	unknown := []corev1.NodeCondition{ // as the node-lifecycle controller leaves them
		cond(corev1.NodeMemoryPressure, corev1.ConditionUnknown),
		cond(corev1.NodeDiskPressure, corev1.ConditionUnknown),
		cond(corev1.NodePIDPressure, corev1.ConditionUnknown),
		cond(corev1.NodeReady, corev1.ConditionUnknown),
	}
	tests := []struct {
		name     string
		old, new []corev1.NodeCondition
		want     []string
	}{
		{"a new node", nil, healthy, []string{"NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID"}},
		{"nothing changes", healthy, healthy, nil},
		{"back after the node went Unknown", unknown, healthy,
			[]string{"NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID", "NodeReady"}},
		{"not ready", healthy, []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse)}, []string{"NodeNotReady"}},
		{"pressure", healthy, []corev1.NodeCondition{cond(corev1.NodeDiskPressure, corev1.ConditionTrue)}, []string{"NodeHasDiskPressure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := conditionEvents(tt.old, tt.new); !slices.Equal(got, tt.want) {
				t.Errorf("events %v, want %v", got, tt.want)
			}
		})
	}
}
