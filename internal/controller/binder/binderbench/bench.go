package binderbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/controller/binder"
)

// Config configures the bench.
type Config struct {
	// Kubeconfig runs against an existing API instead of an embedded
	// control plane per scenario (its storage controllers must be off).
	Kubeconfig string
	// Claims is the size of the burst: claims and pre-created volumes.
	Claims int
	// Released is the number of Released volumes present in the second
	// burst.
	Released int
	// ExactFit is the number of pairs of the shuffled exact-fit burst.
	ExactFit int
	// MatchVolumes are the index sizes the matching cost is measured at.
	MatchVolumes []int
	// Lone is how many lone claims are timed per settle window.
	Lone int
	// SettleWindow is the controller's settle window.
	SettleWindow time.Duration
	// BindWorkers is the controller's bind parallelism.
	BindWorkers int
	// Writers is the load generator's parallelism.
	Writers int
	// Scenarios to run: burst, released, exact, match, lone.
	Scenarios []string
	// Calibration is how long the API's write rate is measured.
	Calibration time.Duration
	// Timeout bounds each scenario's wait (a hang, not a target).
	Timeout time.Duration
	WorkDir string
	// ControllerCPUProfile is where the controller process writes its
	// CPU profile (the last one started wins).
	ControllerCPUProfile string
}

// AllScenarios are the scenarios in the order they run.
var AllScenarios = []string{"match", "exact", "lone", "burst", "released"}

// Validate fills in defaults and checks c.
func (c *Config) Validate() error {
	if c.Claims <= 0 || c.ExactFit <= 0 || c.Lone <= 0 || c.Writers <= 0 || c.BindWorkers <= 0 {
		return errors.New("bench binder: counts must be positive")
	}
	if c.Released < 0 {
		return errors.New("bench binder: --released < 0")
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return fmt.Errorf("bench binder: unknown scenario %q (have %v)", s, AllScenarios)
		}
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = AllScenarios
	}
	return nil
}

// Run runs the scenarios and prints their figures to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(out, "volplane bench binder: settle window %v, %d bind workers, %d client writers\n", cfg.SettleWindow, cfg.BindWorkers, cfg.Writers)
	// One API for every scenario (kube-apiserver starts once per
	// process); scenarios keep apart by namespace, names and classes.
	var e *env
	if !slices.Equal(cfg.Scenarios, []string{"match"}) {
		var err error
		if e, err = startEnv(ctx, &cfg); err != nil {
			return err
		}
		defer e.stop()
	}
	for _, s := range AllScenarios {
		if !slices.Contains(cfg.Scenarios, s) {
			continue
		}
		var err error
		switch s {
		case "match":
			err = runMatch(cfg, out)
		case "exact":
			err = runExact(ctx, e, &cfg, out, false)
			if err == nil {
				err = runExact(ctx, e, &cfg, out, true)
			}
		case "lone":
			err = runLone(ctx, e, &cfg, out)
		case "burst":
			err = runBurst(ctx, e, &cfg, out, 0)
		case "released":
			err = runBurst(ctx, e, &cfg, out, cfg.Released)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s, err)
		}
	}
	return nil
}

func runMatch(cfg Config, out io.Writer) error {
	fmt.Fprintf(out, "\n== matching cost per claim (in-process index, mixed sizes/classes/modes)\n")
	for _, n := range cfg.MatchVolumes {
		fmt.Fprintf(out, "  %7d volumes: %v per claim\n", n, binder.MatchCost(n, 20000))
	}
	fmt.Fprintf(out, "  (upstream scans every volume of the claim's access-mode groups: linear in the volumes)\n")
	return nil
}

// runBurst is the main figure: cfg.Claims claims created in a
// burst against as many pre-created volumes of mixed sizes, classes and
// modes; with released > 0, that many Released volumes are present too.
func runBurst(ctx context.Context, e *env, cfg *Config, out io.Writer, released int) error {
	name := "burst"
	if released > 0 {
		name = "released"
	}
	c := e.client
	ns := "bench-" + name
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return err
	}
	pvs, pvcs := mixed(ns, name, cfg.Claims, 1)
	took, err := createVolumes(ctx, c, pvs, cfg.Writers)
	if err != nil {
		return err
	}
	createRate := float64(len(pvs)) / took.Seconds()
	if released > 0 {
		rel := releasedVolumes(ns, name, released)
		if _, err := createVolumes(ctx, c, rel, cfg.Writers); err != nil {
			return err
		}
	}
	// The API's write rate, with the objects of the burst already in it
	// (an API's writes get dearer as it holds more), before the
	// controller starts.
	writeRate, calCPU, err := calibrate(ctx, c, name, cfg.Writers, cfg.Calibration)
	if err != nil {
		return err
	}
	ctrl, err := e.startController(ctx, cfg, cfg.SettleWindow)
	if err != nil {
		return err
	}
	defer ctrl.stop()
	// The controller first makes the new volumes Available (and the
	// released ones Released): not part of the measured burst.
	if err := waitVolumes(ctx, c, name+"-pv-", v1.VolumeAvailable, cfg.Claims, cfg.Timeout); err != nil {
		return err
	}
	if released > 0 {
		if err := waitVolumes(ctx, c, name+"-gone-", v1.VolumeReleased, released, cfg.Timeout); err != nil {
			return err
		}
	}
	before, err := ctrl.scrape()
	if err != nil {
		return err
	}
	selfBefore := selfCPU()
	start := time.Now()
	createTook, err := createClaims(ctx, c, pvcs, cfg.Writers)
	if err != nil {
		return err
	}
	// The controller's own count of claims it made Bound says when the
	// burst is done, without a watch of the bench's loading the API;
	// one list afterwards checks it.
	after, err := ctrl.waitBinds(ctx, before.binds+float64(cfg.Claims), cfg.Timeout)
	if err != nil {
		return err
	}
	last := time.Now()
	selfUsed := selfCPU() - selfBefore
	if n, err := countBound(ctx, c, ns); err != nil || n != cfg.Claims {
		return fmt.Errorf("the controller counted %.0f binds but %d of %d claims are Bound (%v)", after.binds-before.binds, n, cfg.Claims, err)
	}
	total := last.Sub(start)
	binds := after.binds - before.binds
	writes := after.writesOK - before.writesOK
	floor := time.Duration(4 * float64(cfg.Claims) / writeRate * float64(time.Second))

	if released > 0 {
		fmt.Fprintf(out, "\n== %d claims in a burst, %d pre-created volumes and %d Released volumes present\n", cfg.Claims, cfg.Claims, released)
	} else {
		fmt.Fprintf(out, "\n== %d claims in a burst against %d pre-created volumes (mixed sizes, classes, modes)\n", cfg.Claims, cfg.Claims)
	}
	fmt.Fprintf(out, "  API write rate (the 4 writes of a bind: PV and PVC spec and status, %d writers): %.0f writes/s\n", cfg.Writers, writeRate)
	fmt.Fprintf(out, "  volumes created in:        %v (%.0f/s)\n", took.Round(time.Millisecond), createRate)
	fmt.Fprintf(out, "  claims created in:         %v (%.0f/s)\n", createTook.Round(time.Millisecond), float64(cfg.Claims)/createTook.Seconds())
	fmt.Fprintf(out, "  all %d claims Bound in:  %v from the first create\n", cfg.Claims, total.Round(time.Millisecond))
	fmt.Fprintf(out, "  binds per second:          %.0f\n", float64(cfg.Claims)/total.Seconds())
	fmt.Fprintf(out, "  controller CPU:            %.1f s (%.2f ms per bind)\n", after.cpu-before.cpu, 1000*(after.cpu-before.cpu)/float64(cfg.Claims))
	if e.plane != nil {
		fmt.Fprintf(out, "  API (etcd, apiserver, upstream controllers) and load generator CPU: %.1f s (%.0f%% of %d CPUs over the burst)\n",
			selfUsed, 100*selfUsed/total.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
		fmt.Fprintf(out, "  API CPU per write: %.2f ms in the burst (controller writes and claim creates) vs %.2f ms in the calibration\n",
			1000*selfUsed/(writes+float64(cfg.Claims)), 1000*calCPU)
	}
	fmt.Fprintf(out, "  API writes per bind:       %.2f (%0.f writes, %.0f conflicts, %.0f errors, %.0f binds by the controller)\n",
		writes/float64(cfg.Claims), writes, after.conflicts-before.conflicts, after.writeErrs-before.writeErrs, binds)
	fmt.Fprintf(out, "  write floor (4 writes/bind at the API's rate): %v -> %.2fx the floor (goal <= 1.5x)\n",
		floor.Round(time.Millisecond), total.Seconds()/floor.Seconds())
	fmt.Fprintf(out, "  reference, not measured by this run: upstream v1.37.2 on the machine where issue 13 was measured (2 CPUs), 1,000 pairs 247 s at QPS 20 (4 binds/s), 48 s at QPS 100 (21 binds/s); 5,000 pairs 247 s at QPS 100 (20 binds/s, 61 CPU-s)\n")
	if released > 0 {
		fmt.Fprintf(out, "  reference, not measured by this run: upstream slows to minutes with many Released volumes (kubernetes/kubernetes#118545)\n")
	}
	return nil
}

// selfCPU is this process's CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// releasedVolumes are volumes bound to claims that no longer exist.
func releasedVolumes(ns, prefix string, n int) []*v1.PersistentVolume {
	out := make([]*v1.PersistentVolume, n)
	for i := range out {
		pv := newPV(fmt.Sprintf("%s-gone-%05d", prefix, i), int64(1+i%100)*gi, "", []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, v1.PersistentVolumeFilesystem)
		pv.Spec.ClaimRef = &v1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns,
			Name: fmt.Sprintf("gone-%05d", i), UID: types.UID(uuid.NewUUID())}
		metav1.SetMetaDataAnnotation(&pv.ObjectMeta, storagehelpers.AnnBoundByController, "yes")
		out[i] = pv
	}
	return out
}

// kubectlParallel and kubectlSpread shape the exact-fit burst the way 40
// parallel `kubectl create` processes send it: 40 clients of their own,
// each object after a random pause of up to kubectlSpread (a kubectl
// process's start-up on a loaded machine).
const (
	kubectlParallel = 40
	kubectlSpread   = 600 * time.Millisecond
)

// runExact is the shuffled exact-fit burst: volumes of 1..n Gi
// and claims sized exactly to them, in shuffled order, created at once
// from one client, or (spread) as parallel kubectl processes create them.
func runExact(ctx context.Context, e *env, cfg *Config, out io.Writer, spread bool) error {
	c := e.client
	ns, prefix, how := "bench-exact", "exact", "created at once from one client"
	if spread {
		ns, prefix = "bench-exact-spread", "exact-spread"
		how = fmt.Sprintf("created by %d clients, each object after a pause of up to %v", kubectlParallel, kubectlSpread)
	}
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return err
	}
	ctrl, err := e.startController(ctx, cfg, cfg.SettleWindow)
	if err != nil {
		return err
	}
	defer ctrl.stop()
	watch, err := watchBound(ctx, c, ns)
	if err != nil {
		return err
	}
	defer watch.stop()
	type obj struct {
		pv  *v1.PersistentVolume
		pvc *v1.PersistentVolumeClaim
	}
	var objs []obj
	modes := []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
	for i := 1; i <= cfg.ExactFit; i++ {
		objs = append(objs,
			obj{pv: newPV(fmt.Sprintf("%s-pv-%03d", prefix, i), int64(i)*gi, "bench-"+prefix, modes, v1.PersistentVolumeFilesystem)},
			obj{pvc: newPVC(ns, fmt.Sprintf("%s-c-%03d", prefix, i), int64(i)*gi, "bench-"+prefix, modes, v1.PersistentVolumeFilesystem)})
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	rng.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
	create := func(c kubernetes.Interface, o obj) error {
		var err error
		if o.pv != nil {
			_, err = c.CoreV1().PersistentVolumes().Create(ctx, o.pv, metav1.CreateOptions{})
		} else {
			_, err = c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o.pvc, metav1.CreateOptions{})
		}
		return err
	}
	start := time.Now()
	if !spread {
		for _, o := range objs {
			if err := create(c, o); err != nil {
				return err
			}
		}
	} else {
		pauses := make([]time.Duration, len(objs))
		for i := range pauses {
			pauses[i] = time.Duration(rng.Int64N(int64(kubectlSpread)))
		}
		work := make(chan int)
		errs := make(chan error, kubectlParallel)
		var wg sync.WaitGroup
		for w := range kubectlParallel {
			rc := rest.CopyConfig(e.admin)
			rc.UserAgent = fmt.Sprintf("bench-kubectl-%d", w)
			wc, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			wg.Go(func() {
				for i := range work {
					time.Sleep(pauses[i])
					if err := create(wc, objs[i]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for i := range objs {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	arrived := time.Since(start)
	last, _ := watch.waitBound(ctx, cfg.ExactFit, 15*time.Second+binder.DefaultConfig().MaxBurstHold)
	stranded, larger := 0, 0
	for _, pvc := range watch.snapshot() {
		if pvc.Status.Phase != v1.ClaimBound {
			stranded++
			continue
		}
		want := pvc.Spec.Resources.Requests[v1.ResourceStorage]
		got := pvc.Status.Capacity[v1.ResourceStorage]
		if got.Cmp(want) != 0 {
			larger++
		}
	}
	fmt.Fprintf(out, "\n== shuffled exact-fit burst: %d volumes of 1..%d Gi and %d claims sized to them, %s\n", cfg.ExactFit, cfg.ExactFit, cfg.ExactFit, how)
	fmt.Fprintf(out, "  objects created over:                  %v\n", arrived.Round(time.Millisecond))
	fmt.Fprintf(out, "  claims stranded (Pending):             %d\n", stranded)
	fmt.Fprintf(out, "  claims bound to a larger volume:       %d\n", larger)
	if stranded == 0 {
		fmt.Fprintf(out, "  time to all Bound:                     %v from the first create\n", last.Sub(start).Round(time.Millisecond))
	}
	fmt.Fprintf(out, "  reference, not measured by this run: upstream v1.37.2, 6-7 stranded and about 30 bound larger (kubectl-driven runs reported in issue 21)\n")
	return nil
}

// runLone times single claims against a single fitting volume, with the
// settle window and without: the difference is the latency the window
// adds to a lone claim.
func runLone(ctx context.Context, e *env, cfg *Config, out io.Writer) error {
	c := e.client
	const ns = "bench-lone"
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== lone claim: create -> Bound, %d claims each, one fitting volume waiting\n", cfg.Lone)
	medians := map[time.Duration]time.Duration{}
	for _, settle := range []time.Duration{0, cfg.SettleWindow} {
		ctrl, err := e.startController(ctx, cfg, settle)
		if err != nil {
			return err
		}
		var lat []time.Duration
		for i := range cfg.Lone {
			tag := fmt.Sprintf("lone-%d-%d", settle.Milliseconds(), i)
			modes := []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
			if _, err := c.CoreV1().PersistentVolumes().Create(ctx, newPV(tag, gi, tag, modes, v1.PersistentVolumeFilesystem), metav1.CreateOptions{}); err != nil {
				ctrl.stop()
				return err
			}
			if err := waitVolumes(ctx, c, tag, v1.VolumeAvailable, 1, cfg.Timeout); err != nil {
				ctrl.stop()
				return err
			}
			d, err := timeBind(ctx, c, newPVC(ns, tag, gi, tag, modes, v1.PersistentVolumeFilesystem), cfg.Timeout)
			if err != nil {
				ctrl.stop()
				return err
			}
			lat = append(lat, d)
		}
		ctrl.stop()
		slices.Sort(lat)
		medians[settle] = lat[len(lat)/2]
		fmt.Fprintf(out, "  settle window %-6v median %v (min %v, max %v)\n", settle, lat[len(lat)/2].Round(time.Millisecond),
			lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(out, "  latency the %v window adds to a lone claim: %v\n", cfg.SettleWindow,
		(medians[cfg.SettleWindow] - medians[0]).Round(time.Millisecond))
	return nil
}

// timeBind creates claim and returns how long it took to be Bound, as a
// watch sees it.
func timeBind(ctx context.Context, c kubernetes.Interface, claim *v1.PersistentVolumeClaim, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	w, err := c.CoreV1().PersistentVolumeClaims(claim.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + claim.Name})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	start := time.Now()
	if _, err := c.CoreV1().PersistentVolumeClaims(claim.Namespace).Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	for ev := range w.ResultChan() {
		if pvc, ok := ev.Object.(*v1.PersistentVolumeClaim); ok && pvc.Status.Phase == v1.ClaimBound {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("claim %s not Bound within %v", claim.Name, limit)
}
