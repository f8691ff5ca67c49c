package binder

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/logging"
)

// running is the controller as the manager runs it: informers, worker
// goroutines, the matcher with its settle window, operations in
// goroutines; against a fakeAPI that answers watches.
type running struct {
	api    *fakeAPI
	client *fake.Clientset
	ctrl   *Controller
	reg    *prometheus.Registry
	cancel func()
	done   chan struct{}
}

func startController(t *testing.T, cfg Config) *running {
	t.Helper()
	api := newFakeAPI()
	client := fake.NewClientset()
	api.install(client)
	api.installWatch(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	reg := prometheus.NewRegistry()
	ctrl, err := New(context.Background(), cfg, client, factory, &eventRecorder{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(logging.NewContext(context.Background(), slog.New(slog.DiscardHandler)))
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	r := &running{api: api, client: client, ctrl: ctrl, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		ctrl.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		factory.Shutdown()
	})
	return r
}

// waitAllBound waits (without asserting on time) until every claim is
// Bound or the deadline passes.
func (r *running) waitAllBound(t *testing.T, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		bound := 0
		for _, c := range r.api.claims() {
			if c.Status.Phase == v1.ClaimBound {
				bound++
			}
		}
		return bound == n, nil
	})
	if err != nil {
		_, pvcs := r.api.summary()
		t.Fatalf("claims not all Bound: %v", pvcs)
	}
}

// TestRunBurstExactFit is the burst, in process: 50 volumes of
// 1..50Gi and 50 claims sized exactly to them, created at once in
// shuffled order. Upstream strands some claims and gives others larger
// volumes; here every claim must get its exact fit.
func TestRunBurstExactFit(t *testing.T) {
	r := startController(t, DefaultConfig())
	const n = 50
	type obj struct {
		pv  *v1.PersistentVolume
		pvc *v1.PersistentVolumeClaim
	}
	var objs []obj
	for i := 1; i <= n; i++ {
		objs = append(objs, obj{pv: newPV(fmt.Sprintf("pv-%02d", i), fmt.Sprintf("%dGi", i), pvPhase(""))})
		objs = append(objs, obj{pvc: newPVC(fmt.Sprintf("c-%02d", i), fmt.Sprintf("%dGi", i))})
	}
	rand.New(rand.NewPCG(7, 8)).Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
	ctx := context.Background()
	for _, o := range objs {
		var err error
		if o.pv != nil {
			_, err = r.client.CoreV1().PersistentVolumes().Create(ctx, o.pv, metav1.CreateOptions{})
		} else {
			_, err = r.client.CoreV1().PersistentVolumeClaims("default").Create(ctx, o.pvc, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.waitAllBound(t, n)
	for _, c := range r.api.claims() {
		want := "pv-" + c.Name[len("c-"):]
		if c.Spec.VolumeName != want {
			t.Errorf("claim %s (%s) bound to %s, want its exact fit %s", c.Name, requestQ(c), c.Spec.VolumeName, want)
		}
	}
	if len(r.api.violations) > 0 {
		t.Errorf("invariant violations: %v", r.api.violations)
	}
	if got := counterValue(t, r.reg, "volplane_pv_controller_binds_total"); got != n {
		t.Errorf("binds_total = %v, want %d", got, n)
	}
	if got := counterValue(t, r.reg, "volplane_pv_controller_bind_duration_seconds"); got != n {
		t.Errorf("bind duration observations = %v, want %d", got, n)
	}
}

// TestRunLoneClaimAndLateVolume: a claim that found nothing is bound as
// soon as a fitting volume appears, without waiting for the resync.
func TestRunLoneClaimAndLateVolume(t *testing.T) {
	r := startController(t, Config{ResyncPeriod: time.Hour})
	ctx := context.Background()
	if _, err := r.client.CoreV1().PersistentVolumeClaims("default").Create(ctx, newPVC("c1", "1Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Let the claim find nothing first.
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return counterValue(t, r.reg, "volplane_pv_controller_match_batch_size") >= 1, nil
	})
	if err != nil {
		t.Fatal("the claim was never matched")
	}
	if _, err := r.client.CoreV1().PersistentVolumes().Create(ctx, newPV("pv-1", "1Gi", pvPhase("")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitAllBound(t, 1)
}

// counterValue returns a counter's value, or a histogram's sample count.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += metricValue(m)
		}
	}
	return total
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
