package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"volplane/internal/component"
	"volplane/internal/controller"
	"volplane/internal/controlplane"
	"volplane/internal/logging"
	"volplane/internal/node/agent"
)

// commonFlags are the flags every long-running subcommand shares.
type commonFlags struct {
	verbosity  int
	cpuprofile string
}

func (f *commonFlags) add(fs *pflag.FlagSet) {
	fs.IntVarP(&f.verbosity, "v", "v", 0, "log verbosity: 0 shows upstream warnings and volplane's info; N lets upstream's V(N) messages through")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write this process's CPU profile to this file until it stops (for profiling benches)")
}

// setup installs the logger, starts the CPU profile if one was asked for,
// and returns a context that is cancelled on SIGTERM or SIGINT; its
// cancel also ends the profile.
func (f *commonFlags) setup(cmd *cobra.Command) (context.Context, context.CancelFunc, *slog.Logger, error) {
	stopProfile, err := startCPUProfile(f.cpuprofile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	ctx, stop, log := signalContext(cmd.Context(), f.verbosity)
	return ctx, func() { stop(); stopProfile() }, log, nil
}

// signalContext installs the logger at verbosity and returns a context
// that carries it and is cancelled on SIGTERM or SIGINT.
func signalContext(parent context.Context, verbosity int) (context.Context, context.CancelFunc, *slog.Logger) {
	log := logging.Setup(os.Stderr, logging.Options{Verbosity: verbosity})
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	return logging.NewContext(ctx, log), stop, log
}

func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".volplane"
	}
	return filepath.Join(home, ".volplane")
}

// planeComponent runs the embedded control plane (etcd, kube-apiserver,
// kube-controller-manager). prepare, if set, runs once the API answers;
// *out is set before the components after it start.
func planeComponent(cfg controlplane.Config, prepare func(context.Context, *controlplane.ControlPlane) error, out **controlplane.ControlPlane) component.Component {
	return component.Component{Name: "control plane", Run: func(ctx context.Context, ready func()) error {
		plane, err := controlplane.Start(ctx, cfg)
		if err != nil {
			return err
		}
		defer plane.Stop()
		if prepare != nil {
			if err := prepare(ctx, plane); err != nil {
				return err
			}
		}
		*out = plane
		ready()
		select {
		case <-ctx.Done():
			return nil
		case err := <-plane.Err():
			return err
		}
	}}
}

// schedulerComponent runs the embedded kube-scheduler.
func schedulerComponent(plane **controlplane.ControlPlane) component.Component {
	return component.Component{Name: "scheduler", Run: func(ctx context.Context, ready func()) error {
		return (*plane).RunScheduler(ctx, ready)
	}}
}

// controllersComponent runs volplane's controller manager with the
// configuration cfg returns once the components before it are ready.
func controllersComponent(cfg func() (controller.Config, error)) component.Component {
	return component.Component{Name: "controllers", Run: func(ctx context.Context, ready func()) error {
		c, err := cfg()
		if err != nil {
			return err
		}
		m, err := controller.New(c)
		if err != nil {
			return err
		}
		ready()
		return m.Run(ctx)
	}}
}

// nodeComponent runs a node agent with the configuration cfg returns.
func nodeComponent(cfg func() agent.Config) component.Component {
	return component.Component{Name: "node agent", Run: func(ctx context.Context, ready func()) error {
		return agent.Run(ctx, cfg(), ready)
	}}
}

// run runs components until a signal or a failure, and prints the ready
// line once all of them are ready.
func run(ctx context.Context, cmd *cobra.Command, log *slog.Logger, ready func() (kubeconfig string, attrs []any), components ...component.Component) error {
	start := time.Now()
	r := component.Runner{
		Components: components,
		Ready: func() {
			kubeconfig, attrs := ready()
			log.Info("ready", append([]any{"took", time.Since(start).Round(time.Millisecond), "kubeconfig", kubeconfig}, attrs...)...)
			fmt.Fprintf(cmd.OutOrStdout(), "volplane %s is ready: export KUBECONFIG=%s; kubectl get pv\n", cmd.Name(), kubeconfig)
		},
	}
	return r.Run(ctx)
}
