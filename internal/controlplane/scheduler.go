package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/leaderelection"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
)

// UpstreamVolumePlugins are kube-scheduler's volume plugins of the
// embedded release. They are disabled in every profile: volplane's own
// (internal/scheduler) take their place.
var UpstreamVolumePlugins = []string{"VolumeBinding", "VolumeZone", "VolumeRestrictions", "NodeVolumeLimits"}

// SchedulerPlugin is an out-of-tree plugin volplane registers into the
// embedded scheduler and enables in its profile (at every extension point
// it implements).
type SchedulerPlugin struct {
	Name    string
	Factory frameworkruntime.PluginFactory
}

// The embedded scheduler's API client limits, a departure from
// upstream's defaults (QPS 50, burst 100; see the package doc): the
// scheduler only ever talks to volplane's own API server, which the API
// server's priority and fairness protects, as volplane's embedded
// controllers do (cmd/volplane: 2000/4000). At QPS 50 a pod with a
// delayed-binding claim costs three scheduler writes (nominatedNodeName
// before PreBind, the volume's claimRef, the binding) against one for a
// pod without volumes, so the client limit alone held volume pods to a
// third of the plain rate (bench scheduler: 17.2 vs 55.3 pods/s).
// Upstream's own scheduler_perf runs the scheduler at QPS 5000.
const schedulerQPS, schedulerBurst = 2000, 4000

// schedulerConfig is the KubeSchedulerConfiguration the embedded
// scheduler reads: one default profile without upstream's volume plugins
// and with volplane's.
func (c *Config) schedulerConfig(kubeconfig string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  contentType: application/vnd.kubernetes.protobuf
  qps: %d
  burst: %d
leaderElection:
  leaderElect: %t
  resourceNamespace: kube-system
  resourceName: kube-scheduler
profiles:
- schedulerName: default-scheduler
  plugins:
    multiPoint:
      disabled:
`, kubeconfig, schedulerQPS, schedulerBurst, c.LeaderElect)
	for _, p := range UpstreamVolumePlugins {
		fmt.Fprintf(&b, "      - name: %s\n", p)
	}
	if len(c.SchedulerPlugins) > 0 {
		b.WriteString("      enabled:\n")
		for _, p := range c.SchedulerPlugins {
			fmt.Fprintf(&b, "      - name: %s\n", p.Name)
		}
	}
	return []byte(b.String())
}

// RunScheduler runs the upstream kube-scheduler, from its own options and
// as its own identity (system:kube-scheduler), until ctx is done. It
// calls ready once the scheduler is set up. Leader election is done here rather than by the
// scheduler's Run, which exits the process when it stops leading.
func (cp *ControlPlane) RunScheduler(ctx context.Context, ready func()) error {
	kubeconfig := filepath.Join(cp.pki.Dir, "kube-scheduler.kubeconfig")
	if err := cp.writeKubeconfig(kubeconfig, SchedulerIdentity); err != nil {
		return err
	}
	configFile := filepath.Join(cp.cfg.runDir(), "kube-scheduler.yaml")
	if err := os.MkdirAll(cp.cfg.runDir(), 0o700); err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	if err := writeFile(configFile, cp.cfg.schedulerConfig(kubeconfig)); err != nil {
		return err
	}

	opts := scheduleroptions.NewOptions()
	fs := pflag.NewFlagSet("kube-scheduler", pflag.ContinueOnError)
	for _, f := range opts.Flags.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse([]string{"--config=" + configFile, "--secure-port=0", "--feature-gates=" + featureGates}); err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	var registry []scheduler.Option
	for _, p := range cp.cfg.SchedulerPlugins {
		registry = append(registry, scheduler.WithPlugin(p.Name, p.Factory))
	}
	cc, sched, err := scheduler.Setup(ctx, opts, registry...)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	ready()
	le := cc.LeaderElection
	if le == nil {
		err := scheduler.Run(ctx, cc, sched)
		if ctx.Err() != nil {
			return nil // it says "finished without leader elect" when stopped
		}
		return err
	}
	// Run sees a scheduler without an election of its own.
	cc.LeaderElection = nil
	cc.ComponentConfig.LeaderElection.LeaderElect = false
	le.ReleaseOnCancel = true
	var runErr error
	le.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) { runErr = scheduler.Run(ctx, cc, sched) },
		OnStoppedLeading: func() {},
	}
	elector, err := leaderelection.NewLeaderElector(*le)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	elector.Run(ctx)
	if ctx.Err() == nil {
		return fmt.Errorf("kube-scheduler: lost its lease: %v", runErr)
	}
	return nil
}
