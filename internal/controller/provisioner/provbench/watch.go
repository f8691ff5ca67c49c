package provbench

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// claimBound is the claims' end: phase Bound.
func claimBound(o runtime.Object) (string, bool) {
	c, ok := o.(*v1.PersistentVolumeClaim)
	if !ok || c.Status.Phase != v1.ClaimBound {
		return "", false
	}
	return c.Name, true
}
