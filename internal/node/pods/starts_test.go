package pods

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	criapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// gatedRuntime holds every CreateContainer until the test lets one go,
// and counts how many are in flight.
type gatedRuntime struct {
	criapi.RuntimeService
	gate chan struct{}

	mu            sync.Mutex
	inflight, max int
}

func (r *gatedRuntime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	r.inflight++
	r.max = max(r.max, r.inflight)
	r.mu.Unlock()
	<-r.gate
	id, err := r.RuntimeService.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
	return id, err
}

func (r *gatedRuntime) inFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight
}

// Pods synced at once create and start at most MaxParallelStarts
// containers at a time; every one of them still starts.
func TestContainerStartsAreBounded(t *testing.T) {
	const pods, bound = 6, 2
	var objs []runtime.Object
	for i := range pods {
		objs = append(objs, testPod(fmt.Sprintf("p%d", i), ctr("app")))
	}
	h := newHarness(t, objs...)
	g := &gatedRuntime{RuntimeService: h.rt, gate: make(chan struct{})}
	h.w.cfg.Runtime = g
	h.w.starts = make(chan struct{}, bound)
	var wg sync.WaitGroup
	for _, o := range objs {
		pw := h.worker(o.(*corev1.Pod))
		wg.Go(func() { h.sync(pw) })
	}
	deadline := time.Now().Add(30 * time.Second) // a hang guard, not a target
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for left := pods; left > 0; left-- {
		waitFor("the next creates", func() bool { return g.inFlight() >= min(bound, left) })
		g.gate <- struct{}{}
	}
	wg.Wait()
	if g.max > bound {
		t.Fatalf("%d container creates in flight at once, want at most %d", g.max, bound)
	}
	n := 0
	for _, c := range h.rt.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			n++
		}
	}
	if n != pods {
		t.Fatalf("%d containers running, want %d", n, pods)
	}
}
