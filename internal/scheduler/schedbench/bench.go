package schedbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"volplane/internal/logging"
	"volplane/internal/node/podbench"
)

// Config configures the bench.
type Config struct {
	// Executable is the volplane binary started as `up` (the bench's own).
	Executable string
	// Nodes is how many Node objects are made.
	Nodes int
	// VolumesPerNode is how many local PVs each node gets.
	VolumesPerNode int
	// Pods is how many pods each shape creates at once.
	Pods int
	// Workers is how many creates run in parallel.
	Workers int
	// Keep leaves the data dir in place.
	Keep bool
	// WorkDir is where the data dir is made (default: the system's
	// temporary directory).
	WorkDir string
	// Runc is the runc binary for the cleanup of the child's node.
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
		return errors.New("bench scheduler: no executable")
	}
	if c.Nodes <= 0 || c.VolumesPerNode <= 0 || c.Pods <= 0 || c.Workers <= 0 {
		return errors.New("bench scheduler: --nodes, --volumes-per-node, --pods and --workers must be positive")
	}
	if c.Pods > c.Nodes*c.VolumesPerNode {
		return fmt.Errorf("bench scheduler: %d pods need %d volumes, only %d nodes x %d volumes are made",
			c.Pods, c.Pods, c.Nodes, c.VolumesPerNode)
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
	ownNode   = "bench-scheduler"
	namespace = v1.NamespaceDefault
	shapeKey  = "volplane.io/bench-shape"
)

// Run starts the cluster, measures both shapes, prints them to out and
// cleans up.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b := podbench.Bench{Name: "scheduler", Executable: cfg.Executable, NodeName: ownNode, WorkDir: cfg.WorkDir, Keep: cfg.Keep, Runc: cfg.Runc, Timeout: cfg.Timeout, UpArgs: cfg.UpArgs}
	describe := fmt.Sprintf("%d Node objects x %d local PVs; %d pods per shape", cfg.Nodes, cfg.VolumesPerNode, cfg.Pods)
	return b.Run(ctx, out, describe, func(c *podbench.Cluster, _ string) error {
		fmt.Fprintf(out, "load average at start (1/5/15 min): %s\n", podbench.LoadAverage())
		plain, volume, err := measure(ctx, c.Client(), cfg)
		if err != nil {
			return err
		}
		logging.FromContext(ctx).Info("measured", "plain", plain.wall, "volume", volume.wall)
		printResult(out, cfg, plain, volume)
		fmt.Fprintf(out, "load average at end (1/5/15 min): %s\n", podbench.LoadAverage())
		return nil
	})
}

// measure sets the nodes and volumes up and times both shapes.
func measure(ctx context.Context, cs kubernetes.Interface, cfg Config) (plain, volume shape, err error) {
	log := logging.FromContext(ctx)
	nodes := &fakeNodes{cs: cs, n: cfg.Nodes}
	if err := nodes.create(ctx); err != nil {
		return plain, volume, err
	}
	beatCtx, stopBeat := context.WithCancel(ctx)
	var beats sync.WaitGroup
	beats.Add(1)
	go func() { defer beats.Done(); nodes.keepFresh(beatCtx) }()
	defer func() { stopBeat(); beats.Wait() }()
	if err := nodes.waitSchedulable(ctx, cfg.Timeout); err != nil {
		return plain, volume, fmt.Errorf("bench nodes: %w", err)
	}
	if err := createVolumes(ctx, cs, cfg.Nodes, cfg.VolumesPerNode); err != nil {
		return plain, volume, err
	}
	if err := waitAvailable(ctx, cs, cfg.Nodes*cfg.VolumesPerNode, cfg.Timeout); err != nil {
		return plain, volume, fmt.Errorf("bench PVs: %w", err)
	}
	log.Info("nodes and volumes ready")
	if plain, err = runShape(ctx, cs, cfg, "no-volume", false); err != nil {
		return plain, volume, err
	}
	if err := deletePods(ctx, cs, cfg.Timeout); err != nil {
		return plain, volume, err
	}
	volume, err = runShape(ctx, cs, cfg, "volume", true)
	return plain, volume, err
}

func benchPod(name, shapeName, claim string) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
			Labels: map[string]string{benchLabel: benchValue, shapeKey: shapeName}},
		Spec: v1.PodSpec{
			NodeSelector:                 map[string]string{benchLabel: benchValue},
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []v1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi")}}}},
		},
	}
	if claim != "" {
		pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	}
	return pod
}

// runShape creates the shape's claims (untimed), then its pods at once,
// and waits until every pod is bound to a node.
func runShape(ctx context.Context, cs kubernetes.Interface, cfg Config, shapeName string, withClaim bool) (shape, error) {
	res := shape{name: shapeName, pods: cfg.Pods}
	claimName := func(i int) string { return fmt.Sprintf("bench-claim-%05d", i) }
	meter, err := podbench.StartCost(ctx, cs)
	if err != nil {
		return res, err
	}
	if withClaim {
		err := parallel(ctx, cfg.Pods, cfg.Workers, func(ctx context.Context, i int) error {
			claim := &v1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: claimName(i), Namespace: namespace, Labels: map[string]string{benchLabel: benchValue}},
				Spec: v1.PersistentVolumeClaimSpec{
					AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
					StorageClassName: ptr.To(className),
					Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}
			_, err := cs.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, claim, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("%s: create claims: %w", shapeName, err)
		}
	}
	tr, err := startTracker(ctx, cs, shapeName)
	if err != nil {
		return res, err
	}
	defer tr.stop()
	var pt *podbench.ClaimMarks
	if withClaim {
		if pt, err = startPhaseTracker(ctx, cs); err != nil {
			return res, err
		}
		defer pt.Stop()
	}
	created := make([]time.Time, cfg.Pods)
	start := time.Now()
	err = parallel(ctx, cfg.Pods, cfg.Workers, func(ctx context.Context, i int) error {
		claim := ""
		if withClaim {
			claim = claimName(i)
		}
		pod := benchPod(fmt.Sprintf("bench-%s-%05d", shapeName, i), shapeName, claim)
		created[i] = time.Now()
		_, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("%s: create pods: %w", shapeName, err)
	}
	res.creates = time.Since(start)
	bound, err := tr.wait(ctx, cfg.Pods, cfg.Timeout)
	if err != nil {
		return res, fmt.Errorf("%s: %w", shapeName, err)
	}
	var last time.Time
	for i := range cfg.Pods {
		at := bound[fmt.Sprintf("bench-%s-%05d", shapeName, i)]
		res.latencies = append(res.latencies, at.Sub(created[i]))
		if at.After(last) {
			last = at
		}
	}
	res.wall = last.Sub(start)
	if res.cost, err = meter.Stop(ctx, cs); err != nil {
		return res, err
	}
	for _, beat := range heartbeatWrites {
		delete(res.cost.Writes, beat)
	}
	if pt != nil {
		res.phases = splitPhases(pt, created, func(i int) time.Time { return bound[fmt.Sprintf("bench-%s-%05d", shapeName, i)] }, claimName)
	}
	return res, nil
}

// tracker watches the shape's pods (an informer, so a watch the API
// server ends is resumed) and notes when each is first seen bound.
type tracker struct {
	stopCh chan struct{}
	mu     sync.Mutex
	bound  map[string]time.Time
}

func startTracker(ctx context.Context, cs kubernetes.Interface, shapeName string) (*tracker, error) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = shapeKey + "=" + shapeName }))
	t := &tracker{stopCh: make(chan struct{}), bound: map[string]time.Time{}}
	note := func(obj any) {
		pod, ok := obj.(*v1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		now := time.Now()
		t.mu.Lock()
		if _, seen := t.bound[pod.Name]; !seen {
			t.bound[pod.Name] = now
		}
		t.mu.Unlock()
	}
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, obj any) { note(obj) },
	}); err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	f.Start(t.stopCh)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		close(t.stopCh)
		return nil, errors.New("pod informer did not sync")
	}
	return t, nil
}

// wait waits until n pods are bound and returns when each was.
func (t *tracker) wait(ctx context.Context, n int, timeout time.Duration) (map[string]time.Time, error) {
	err := poll(ctx, timeout, func() (bool, string, error) {
		t.mu.Lock()
		got := len(t.bound)
		t.mu.Unlock()
		return got >= n, fmt.Sprintf("%d of %d pods bound", got, n), nil
	})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.bound), nil
}

func (t *tracker) stop() { close(t.stopCh) }

// deletePods force-deletes the bench pods (no kubelet would confirm a
// graceful delete) and waits until they are gone.
func deletePods(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	sel := metav1.ListOptions{LabelSelector: benchLabel + "=" + benchValue}
	err := cs.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, sel)
	if err != nil {
		return fmt.Errorf("delete bench pods: %w", err)
	}
	return poll(ctx, timeout, func() (bool, string, error) {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, sel)
		if err != nil {
			return false, "", err
		}
		return len(list.Items) == 0, fmt.Sprintf("%d bench pods left", len(list.Items)), nil
	})
}

// printResult prints both shapes side by side, the ratio and upstream's
// references.
func printResult(out io.Writer, cfg Config, plain, volume shape) {
	fmt.Fprintf(out, "\n%-44s %8s %10s %10s %10s %10s %12s\n", "shape (create -> spec.nodeName, watched)", "pods", "wall", "pods/s", "p50", "p99", "all created")
	for _, s := range []shape{plain, volume} {
		label := "no volumes"
		if s.name == "volume" {
			label = "one new WaitForFirstConsumer claim each"
		}
		fmt.Fprintf(out, "%-44s %8d %10s %10.1f %10s %10s %12s\n", label, s.pods,
			s.wall.Round(time.Millisecond), s.rate(),
			podbench.Millis(percentile(s.latencies, 50)), podbench.Millis(percentile(s.latencies, 99)),
			s.creates.Round(time.Millisecond))
	}
	volume.phases.print(out)
	printWrites(out, plain, volume)
	r := ratio(volume, plain)
	fmt.Fprintf(out, "\nvolume / no-volume rate: %.0f%%, %s\n", r*100, verdict(r))
	fmt.Fprintf(out, "(%d Node objects, %d local PVs each; the volume pods' time includes choosing the PV,\n"+
		" writing its claimRef and waiting until the PV controller has bound the claim)\n", cfg.Nodes, cfg.VolumesPerNode)
	fmt.Fprint(out, references)
}

// heartbeatWrites are the bench's own writes that keep its Node objects
// alive, left out of a shape's writes.
var heartbeatWrites = []string{"leases PUT", "nodes/status PATCH"}

// printWrites prints each shape's API writes per pod (claim and pod
// creates included), by kind, and the ratio the writes alone allow: on
// one API server whose write rate bounds both shapes, the volume shape
// cannot beat the no-volume rate times this. Then the same for up's CPU
// per pod, with how busy the machine was.
func printWrites(out io.Writer, plain, volume shape) {
	per := func(s shape) float64 { return s.cost.Writes.Total() / float64(max(s.pods, 1)) }
	fmt.Fprintf(out, "\nAPI writes per pod (creates included, the bench's node heartbeats left out):\n")
	kinds := map[string]bool{}
	for _, s := range []shape{plain, volume} {
		for k := range s.cost.Writes {
			kinds[k] = true
		}
	}
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "  %-40s %10s %10s\n", "", "no volumes", "volume")
	for _, k := range keys {
		fmt.Fprintf(out, "  %-40s %10.2f %10.2f\n", k, plain.cost.Writes[k]/float64(max(plain.pods, 1)), volume.cost.Writes[k]/float64(max(volume.pods, 1)))
	}
	fmt.Fprintf(out, "  %-40s %10.2f %10.2f\n", "total", per(plain), per(volume))
	if per(volume) > 0 {
		fmt.Fprintf(out, "no-volume / volume writes per pod: %.0f%%; where the API's write rate bounds both shapes, the volume rate stays below this share of the no-volume rate\n", 100*per(plain)/per(volume))
	}
	cpu := func(s shape) float64 { return 1000 * s.cost.UpCPU / float64(max(s.pods, 1)) }
	fmt.Fprintf(out, "  %-40s %10.2f %10.2f\n", "up's CPU per pod, ms", cpu(plain), cpu(volume))
	fmt.Fprintf(out, "  %-40s %9.0f%% %9.0f%%\n", "machine busy (/proc/stat, all cores)", 100*plain.cost.Machine.BusyShare(), 100*volume.cost.Machine.BusyShare())
	if cpu(volume) > 0 {
		fmt.Fprintf(out, "no-volume / volume CPU per pod: %.0f%%; where the machine's cores bound both shapes, the volume rate stays below this share of the no-volume rate\n", 100*cpu(plain)/cpu(volume))
	}
}

// references are upstream's scheduler_perf thresholds (minimum
// SchedulingThroughput, pods/s, on upstream's CI machines), from
// kubernetes v1.37.2 test/integration/scheduler_perf; not measured here.
const references = `
references, NOT measured here (upstream kubernetes v1.37.2,
test/integration/scheduler_perf, minimum SchedulingThroughput of the
"performance" cases on upstream's CI machines, 5000 nodes, integration
API server, no controllers, scheduler client at QPS 5000; volplane's
embedded scheduler runs at QPS 2000, upstream's default is 50):
  misc/performance-config.yaml     SchedulingBasic/5000Nodes_10000Pods     680 pods/s (no volumes)
  misc/performance-config.yaml     SchedulingBasic/5000Nodes_50000Pods     790 pods/s (no volumes)
  volumes/performance-config.yaml  SchedulingCSIPVs/5000Nodes_5000Pods     100 pods/s (pre-bound CSI PV+PVC each)
  volumes/performance-config.yaml  SchedulingInTreePVs/5000Nodes_2000Pods  290 pods/s (pre-bound in-tree PV+PVC each)
  upstream has no delayed-binding (WaitForFirstConsumer) case; its volume
  cases' claims are pre-bound (pv.kubernetes.io/bind-completed), so no
  binding wait is in them.
`
