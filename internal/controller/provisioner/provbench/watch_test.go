package provbench

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The marker notes a claim reaching Bound and its deletion, whenever the
// waiter asks.
func TestMarker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := fake.NewClientset()
	m, err := startMarker(ctx, claimsLW(cs), claimBound)
	if err != nil {
		t.Fatal(err)
	}
	defer m.stop()
	claims := cs.CoreV1().PersistentVolumeClaims(namespace)
	c := benchClaim("c-0", immediateClass)
	if _, err := claims.Create(ctx, c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	c.Status.Phase = v1.ClaimBound
	if _, err := claims.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	at, err := m.wait(ctx, "c-0", false)
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(before) {
		t.Errorf("Bound noted at %v, before the update at %v", at, before)
	}
	if err := claims.Delete(ctx, "c-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.wait(ctx, "c-0", true); err != nil {
		t.Fatal(err)
	}
}
