package podbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	noderuntime "volplane/internal/node/runtime"
)

// Config configures the bench.
type Config struct {
	// Executable is the volplane binary started as `up` (the bench's own).
	Executable string
	// Pods is how many pods are created at once, and how many bare runc
	// runs make the floor.
	Pods int
	// Lone is how many lone pods are timed one after another.
	Lone int
	// Updates is how many configMap updates are timed into a running
	// pod's volume.
	Updates int
	// Keep leaves the data dir in place (its containers and mounts are
	// still removed).
	Keep bool
	// WorkDir is where the data dir is made (default: the system's
	// temporary directory).
	WorkDir string
	// Runc is the runc binary for the floor and the cleanup ("runc" on
	// $PATH when empty).
	Runc string
	// Timeout bounds each wait (a hang, not a target).
	Timeout time.Duration
	// UpArgs are extra flags for the child `volplane up` (e.g. its
	// --cpuprofile).
	UpArgs []string
}

// Validate fills in defaults and checks c.
func (c *Config) Validate() error {
	if c.Executable == "" {
		return errors.New("bench pods: no executable")
	}
	if c.Pods <= 0 || c.Lone <= 0 || c.Updates <= 0 {
		return errors.New("bench pods: --pods, --lone and --updates must be positive")
	}
	if c.Runc == "" {
		c.Runc = "runc"
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	return nil
}

const (
	nodeName   = "bench-pods"
	namespace  = v1.NamespaceDefault
	benchLabel = "volplane-bench"
)

// Goals of issue 17.
const (
	loneGoal    = 300 * time.Millisecond
	floorFactor = 1.5
)

// Result is what one run measured.
type Result struct {
	Lone  []time.Duration
	Burst []time.Duration
	AllUp time.Duration
	// BurstCost is what the burst cost, from its first create until all
	// its pods ran.
	BurstCost Cost
	Teardown  time.Duration
	Floor     noderuntime.FloorResult
	Cores     int
	// The same for pods with volumes (a pre-bound hostPath claim, a
	// configMap, a secret, a projected token and an emptyDir each), and
	// the configMap-update-to-pod delays.
	VolLone       []time.Duration
	VolBurst      []time.Duration
	VolAllUp      time.Duration
	VolBurstCost  Cost
	VolTeardown   time.Duration
	ConfigUpdates []time.Duration
}

// FloorWall is the floor's total wall time.
func (r Result) FloorWall() time.Duration {
	var t time.Duration
	for _, d := range r.Floor.Runs {
		t += d
	}
	return t
}

// Run starts the cluster, measures, prints the table to out and cleans up.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b := Bench{Name: "pods", Executable: cfg.Executable, NodeName: nodeName, WorkDir: cfg.WorkDir, Keep: cfg.Keep, Runc: cfg.Runc, Timeout: cfg.Timeout, UpArgs: cfg.UpArgs}
	return b.Run(ctx, out, fmt.Sprintf("%d lone pods, %d at once", cfg.Lone, cfg.Pods), func(c *Cluster, dataDir string) error {
		fmt.Fprintf(out, "load average at start (1/5/15 min): %s\n", LoadAverage())
		res, err := measure(ctx, c.Client(), cfg, dataDir)
		if err != nil {
			return err
		}
		return PrintTable(out, res.Rows(cfg))
	})
}

func measure(ctx context.Context, cs kubernetes.Interface, cfg Config, dataDir string) (Result, error) {
	res := Result{Cores: goruntime.NumCPU()}
	tr, err := StartMarker(ctx, PodsLW(cs, namespace), benchLabel, PodRunningReady)
	if err != nil {
		return res, fmt.Errorf("pods: %w", err)
	}
	defer tr.Stop()
	for i := range cfg.Lone {
		name := "lone-" + strconv.Itoa(i)
		d, err := createAndWait(ctx, cs, tr, benchPod(name), cfg.Timeout)
		if err != nil {
			return res, err
		}
		res.Lone = append(res.Lone, d)
		if _, err := deleteAndWait(ctx, cs, tr, []string{name}, cfg.Timeout); err != nil {
			return res, err
		}
	}
	names := make([]string, cfg.Pods)
	for i := range names {
		names[i] = "burst-" + strconv.Itoa(i)
	}
	res.Burst = make([]time.Duration, cfg.Pods)
	meter, err := StartCost(ctx, cs)
	if err != nil {
		return res, err
	}
	errs := make([]error, cfg.Pods)
	start := time.Now()
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { res.Burst[i], errs[i] = createAndWait(ctx, cs, tr, benchPod(name), cfg.Timeout) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	for _, name := range names {
		res.AllUp = max(res.AllUp, tr.Reached(name).Sub(start))
	}
	if res.BurstCost, err = meter.Stop(ctx, cs); err != nil {
		return res, err
	}
	if res.Teardown, err = deleteAndWait(ctx, cs, tr, names, cfg.Timeout); err != nil {
		return res, err
	}
	if err := measureVolumes(ctx, cs, tr, cfg, dataDir, &res); err != nil {
		return res, fmt.Errorf("pods with volumes: %w", err)
	}
	if res.ConfigUpdates, err = measureConfigUpdates(ctx, cs, tr, cfg, dataDir); err != nil {
		return res, fmt.Errorf("configMap updates: %w", err)
	}
	// The floor runs on the same machine with the cluster up and idle, as
	// it was before the burst.
	// The lanes are the agent's default bound on parallel creates and
	// starts (pods.Config.MaxParallelStarts, twice the cores).
	floor, err := noderuntime.RuncFloor(ctx, cfg.Runc, dataDir, cfg.Pods, 2*res.Cores)
	if err != nil {
		return res, fmt.Errorf("runc floor: %w", err)
	}
	res.Floor = floor
	return res, nil
}

// createAndWait creates a bench pod and returns the time from the start
// of the create call until the watch sees it Running with every container
// ready.
func createAndWait(ctx context.Context, cs kubernetes.Interface, tr *Marker, pod *v1.Pod, timeout time.Duration) (time.Duration, error) {
	name := pod.Name
	ready := tr.Expect(name)
	start := time.Now()
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, fmt.Errorf("create pod %s: %w", name, err)
	}
	select {
	case <-ready:
		return tr.Reached(name).Sub(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-tr.Done():
		return 0, fmt.Errorf("pod %s: the watch stopped", name)
	case <-time.After(timeout):
		return 0, fmt.Errorf("pod %s not Running after %v", name, timeout)
	}
}

// deleteAndWait deletes the pods at once with a grace period of 1 s (as
// `kubectl delete --now`: the bench's `sleep` ignores SIGTERM as PID 1,
// so the default 30 s would measure the grace period) and returns the time
// until the watch has seen every one of them deleted from the API.
func deleteAndWait(ctx context.Context, cs kubernetes.Interface, tr *Marker, names []string, timeout time.Duration) (time.Duration, error) {
	gone := make([]<-chan struct{}, len(names))
	for i, n := range names {
		gone[i] = tr.ExpectGone(n)
	}
	grace := int64(1)
	errs := make([]error, len(names))
	start := time.Now()
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			errs[i] = cs.CoreV1().Pods(namespace).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	deadline := time.After(timeout)
	for i, ch := range gone {
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tr.Done():
			return 0, errors.New("the pod watch stopped")
		case <-deadline:
			return 0, fmt.Errorf("pod %s still in the API after %v", names[i], timeout)
		}
	}
	var last time.Time
	for _, n := range names {
		if t := tr.Deleted(n); t.After(last) {
			last = t
		}
	}
	return last.Sub(start), nil
}

func benchPod(name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: "pods"}},
		Spec: v1.PodSpec{
			RestartPolicy: v1.RestartPolicyNever,
			Containers: []v1.Container{{
				Name:    "c",
				Image:   "busybox",
				Command: []string{"sh", "-c", "exec sleep 3600"},
			}},
		},
	}
}

// Rows is the printed table: the figures measured, the reference, the
// goals.
func (r Result) Rows(cfg Config) []Row {
	wall := r.FloorWall()
	floor := wall / time.Duration(r.Cores)
	n := len(r.Floor.Runs)
	rows := []Row{
		{"lone pod created -> Running p50", Millis(Percentile(r.Lone, 50)), fmt.Sprintf("%d pods one after another, from the create call to the watch event", len(r.Lone))},
		{"lone pod created -> Running p99", Millis(Percentile(r.Lone, 99)), ""},
		{fmt.Sprintf("%d at once: created -> Running p50", len(r.Burst)), Millis(Percentile(r.Burst, 50)), "parallel create calls; each pod from its own create call"},
		{fmt.Sprintf("%d at once: created -> Running p99", len(r.Burst)), Millis(Percentile(r.Burst, 99)), ""},
		{fmt.Sprintf("%d at once: all Running", len(r.Burst)), Millis(r.AllUp), "from the first create call"},
	}
	rows = append(rows, r.BurstCost.rows(fmt.Sprintf("%d at once", len(r.Burst)), len(r.Burst), r.Cores, r.AllUp)...)
	rows = append(rows, []Row{
		{fmt.Sprintf("teardown of %d", len(r.Burst)), Millis(r.Teardown), "delete (grace 1 s, as kubectl delete --now) -> all gone from the API"},
		{fmt.Sprintf("runc floor: %d bare runc run, wall", n), Millis(wall), fmt.Sprintf("%s per run", Millis(wall/time.Duration(max(n, 1))))},
		{fmt.Sprintf("runc floor: %d bare runc run, CPU", n), Millis(r.Floor.CPU), fmt.Sprintf("%s per run, user+system", Millis(r.Floor.CPU/time.Duration(max(n, 1))))},
		{"runc floor = wall / cores", Millis(floor), fmt.Sprintf("%d cores", r.Cores)},
		{fmt.Sprintf("runc floor: %d bare runc run in %d lanes at once, wall", n, r.Floor.Lanes), Millis(r.Floor.LanesWall), fmt.Sprintf("%s CPU per run; what runc gives side by side, the way a burst starts containers", Millis(r.Floor.LanesCPU/time.Duration(max(n, 1))))},
		{fmt.Sprintf("%d at once: all Running / floor in lanes", len(r.Burst)), fmt.Sprintf("%.2fx", float64(r.AllUp)/float64(max(r.Floor.LanesWall, 1))), "the agent's cost over runc's own"},
		{"with volumes: lone pod created -> Running p50", Millis(Percentile(r.VolLone, 50)), "each pod: a pre-bound hostPath claim, a configMap, a secret, a projected token, an emptyDir"},
		{"with volumes: lone pod created -> Running p99", Millis(Percentile(r.VolLone, 99)), ""},
		{fmt.Sprintf("with volumes: %d at once: created -> Running p50", len(r.VolBurst)), Millis(Percentile(r.VolBurst, 50)), ""},
		{fmt.Sprintf("with volumes: %d at once: created -> Running p99", len(r.VolBurst)), Millis(Percentile(r.VolBurst, 99)), ""},
		{fmt.Sprintf("with volumes: %d at once: all Running", len(r.VolBurst)), Millis(r.VolAllUp), "from the first create call"},
	}...)
	rows = append(rows, r.VolBurstCost.rows(fmt.Sprintf("with volumes: %d at once", len(r.VolBurst)), len(r.VolBurst), r.Cores, r.VolAllUp)...)
	rows = append(rows, []Row{
		{fmt.Sprintf("with volumes: teardown of %d", len(r.VolBurst)), Millis(r.VolTeardown), "delete -> all gone from the API (volumes torn down first)"},
		{"configMap update -> in the pod's volume p50", Millis(Percentile(r.ConfigUpdates, 50)), fmt.Sprintf("%d updates, update call -> the file on the host shows it", len(r.ConfigUpdates))},
		{"configMap update -> in the pod's volume p99", Millis(Percentile(r.ConfigUpdates, 99)), ""},
		{"reference (not measured here)", "p99 <= 5 s", "upstream pod-startup SLO for stateless pods (kubernetes/community sig-scalability SLOs)"},
		{"reference (not measured here)", "p99 500 s / 45.6 s", "clusterloader2 single-node storage runs, 100 pods x 1 PV / x 1 emptyDir (issue 18)"},
		{"reference (not measured here)", "60-90 s", "upstream configMap update delay: kubelet sync period + cache TTL (issue 18)"},
		{"reference (not measured here)", "~50 ms wall, ~24 ms CPU", "per bare runc run, issue 17's note of this machine"},
		Goal{Name: "lone p99 < 300 ms", Value: Percentile(r.Lone, 99), Limit: loneGoal, Strict: true}.Row(),
		Goal{Name: fmt.Sprintf("%d at once within %.1fx floor", len(r.Burst), floorFactor), Value: r.AllUp, Limit: time.Duration(float64(floor) * floorFactor)}.Row(),
	}...)
	return rows
}
