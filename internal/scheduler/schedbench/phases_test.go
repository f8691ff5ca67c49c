package schedbench

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClaimBound: the bench marks a claim bound at the PV controller's
// claim write that PreBind waits for, not at the later status write.
func TestClaimBound(t *testing.T) {
	completed := map[string]string{"pv.kubernetes.io/bind-completed": "yes"}
	tests := []struct {
		name  string
		claim v1.PersistentVolumeClaim
		want  bool
	}{
		{"new claim", v1.PersistentVolumeClaim{}, false},
		{"volumeName only (a user's pre-binding)", v1.PersistentVolumeClaim{Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pv-1"}}, false},
		{"claim write, status not yet", v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Annotations: completed},
			Spec:       v1.PersistentVolumeClaimSpec{VolumeName: "pv-1"},
			Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending},
		}, true},
		{"phase Bound without the claim write", v1.PersistentVolumeClaim{
			Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := claimBound(&tt.claim); got != tt.want {
				t.Errorf("claimBound = %v, want %v", got, tt.want)
			}
		})
	}
}
