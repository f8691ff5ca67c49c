package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBinderKubectlBurst is the shuffled exact-fit burst as users make it:
// 50 volumes of 1..50Gi and 50 claims sized exactly, every object created
// by its own `kubectl create` process, 40 at a time, in shuffled order,
// against `volplane up`. Every claim must end Bound to its exact fit: none
// stranded, none on a larger volume. It runs twice on one server, each
// round in a class and namespace of its own.
func TestBinderKubectlBurst(t *testing.T) {
	p := startUp(t)
	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) { kubectlBurst(t, p, round) })
	}
}

func kubectlBurst(t *testing.T, p *Process, round int) {
	const n, parallel = 50, 40
	ns := fmt.Sprintf("burst-%d", round)
	class := fmt.Sprintf("burst-%d", round)
	p.MustKubectl(t, "create", "namespace", ns)
	var manifests []string
	for i := 1; i <= n; i++ {
		manifests = append(manifests, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %s-pv-%02d}
spec:
  capacity: {storage: %dGi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: %s
  hostPath: {path: /tmp/volplane-e2e-burst/%s-%02d}
`, class, i, i, class, class, i), fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim-%02d, namespace: %s}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: %s
  resources: {requests: {storage: %dGi}}
`, i, ns, class, i))
	}
	rand.New(rand.NewSource(time.Now().UnixNano())).Shuffle(len(manifests), func(i, j int) {
		manifests[i], manifests[j] = manifests[j], manifests[i]
	})
	// No cleanup between rounds: deleting 100 objects while the next
	// round arrives would load the API and spread that round's arrivals;
	// the server and its data go with the test.
	start := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, m := range manifests {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := p.KubectlWith(kubectlBin(), m, "create", "-f", "-"); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	created := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("kubectl create failed %d times, first: %v", len(errs), errs[0])
	}

	cs := p.Client()
	var stranded, oversized []string
	eventually(t, 3*time.Minute, func() error {
		list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		stranded, oversized = nil, nil
		for _, c := range list.Items {
			if c.Status.Phase != v1.ClaimBound {
				stranded = append(stranded, c.Name)
				continue
			}
			req, capacity := c.Spec.Resources.Requests[v1.ResourceStorage], c.Status.Capacity[v1.ResourceStorage]
			if capacity.Cmp(req) != 0 {
				oversized = append(oversized, fmt.Sprintf("%s(%s on %s)", c.Name, req.String(), capacity.String()))
			}
		}
		if len(list.Items) != n || len(stranded) > 0 {
			return fmt.Errorf("%d claims, %d not bound: %v", len(list.Items), len(stranded), stranded)
		}
		return nil
	})
	t.Logf("round %d: %d objects created by kubectl in %v; %d stranded, %d oversized", round, 2*n, created.Round(time.Millisecond), len(stranded), len(oversized))
	if len(oversized) > 0 {
		t.Errorf("%d claims bound to a larger volume than their exact fit: %v", len(oversized), oversized)
	}
}
