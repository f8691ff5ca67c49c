package main

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"volplane/internal/controller/binder"
	"volplane/internal/controller/binder/binderbench"
	"volplane/internal/logging"
)

func newBenchBinderCommand() *cobra.Command {
	cfg := binderbench.Config{}
	var (
		verbosity  int
		cpuprofile string
	)
	cmd := &cobra.Command{
		Use:   "binder",
		Short: "PV controller throughput against the embedded API",
		Long: `Measure volplane's PV controller (persistentvolume-binder) and print the
figures of issue 13 beside upstream's: matching cost per claim at 1k/10k/50k
volumes; the shuffled exact-fit burst (claims stranded, bound larger, time);
the latency the settle window adds to a lone claim; the time for N claims
created in a burst to all be Bound against N pre-created volumes of mixed
sizes, classes and modes, with binds/s, controller CPU seconds, API writes per
bind and the API's own write rate measured in the same run; and the same burst
with N Released volumes present.

Each scenario starts an embedded control plane of its own in a temporary
directory (or uses --kubeconfig, whose storage controllers must be off); the
controller runs in a child process so that its CPU time is its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The embedded API logs a lot; keep warnings, print figures.
			ctx, stop, log := signalContext(cmd.Context(), verbosity)
			defer stop()
			if verbosity == 0 {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			stopProfile, err := startCPUProfile(cpuprofile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return binderbench.Run(logging.NewContext(ctx, log), cfg, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "use this cluster's API (its storage controllers off) instead of an embedded control plane per scenario")
	fs.IntVar(&cfg.Claims, "claims", 10000, "claims (and pre-created volumes) in the burst")
	fs.IntVar(&cfg.Released, "released", 10000, "Released volumes present in the second burst")
	fs.IntVar(&cfg.ExactFit, "exact-fit", 50, "pairs in the shuffled exact-fit burst")
	fs.IntSliceVar(&cfg.MatchVolumes, "match-volumes", []int{1000, 10000, 50000}, "index sizes the matching cost is measured at")
	fs.IntVar(&cfg.Lone, "lone", 7, "lone claims timed per settle window")
	fs.DurationVar(&cfg.SettleWindow, "pv-bind-settle-window", binder.DefaultConfig().SettleWindow, "the controller's settle window")
	fs.IntVar(&cfg.BindWorkers, "pv-bind-workers", binder.DefaultConfig().BindWorkers, "the controller's parallel binds")
	fs.IntVar(&cfg.Writers, "writers", 64, "parallel writers creating objects and measuring the API's write rate")
	fs.StringSliceVar(&cfg.Scenarios, "scenarios", nil, "scenarios to run (match, exact, lone, burst, released); all when empty")
	fs.DurationVar(&cfg.Calibration, "calibration", 5*time.Second, "how long the API's own write rate is measured")
	fs.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "give up a scenario after this (a hang, not a target)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where the temporary control planes live (default: the system's temp dir)")
	fs.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	fs.StringVar(&cfg.ControllerCPUProfile, "controller-cpuprofile", "", "write the controller process's CPU profile to this file")
	fs.StringVar(&cpuprofile, "cpuprofile", "", "write this process's (API and load generator) CPU profile to this file")
	cmd.AddCommand(newBenchBinderControllerCommand())
	return cmd
}

// newBenchBinderControllerCommand is the bench's controller process.
func newBenchBinderControllerCommand() *cobra.Command {
	cfg := binderbench.ControllerConfig{Binder: binder.DefaultConfig()}
	var cpuprofile string
	cmd := &cobra.Command{
		Use:    "controller",
		Short:  "Run the PV controller alone for bench binder (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, _ := signalContext(cmd.Context(), 0)
			defer stop()
			stopProfile, err := startCPUProfile(cpuprofile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return binderbench.RunController(ctx, cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "the API")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "127.0.0.1:0", "loopback HOST:PORT for /metrics")
	fs.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	cfg.Binder.AddFlags(fs)
	return cmd
}

// startCPUProfile writes this process's CPU profile to path until the
// returned stop is called; with an empty path it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
