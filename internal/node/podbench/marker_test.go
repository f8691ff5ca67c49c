package podbench

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The marker notes a pod reaching Running and ready, and its deletion,
// whenever the waiter asks.
func TestMarker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := fake.NewClientset()
	m, err := StartMarker(ctx, PodsLW(cs, namespace), benchLabel, PodRunningReady)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	pods := cs.CoreV1().Pods(namespace)
	p := benchPod("p-0")
	if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Expect("p-0"):
		t.Fatal("a pod just created is marked Running")
	case <-time.After(100 * time.Millisecond):
	}
	before := time.Now()
	p.Status.Phase = v1.PodRunning
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, v1.ContainerStatus{Name: c.Name, Ready: true})
	}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	at, err := m.Wait(ctx, "p-0", false)
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(before) {
		t.Errorf("Running noted at %v, before the update at %v", at, before)
	}
	if err := pods.Delete(ctx, "p-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, "p-0", true); err != nil {
		t.Fatal(err)
	}
	if m.Deleted("p-0").IsZero() {
		t.Error("Deleted is zero after the wait")
	}
}
