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

	"volplane/internal/controlplane"
	"volplane/internal/logging"
)

// commonFlags are the flags every long-running subcommand shares.
type commonFlags struct {
	verbosity int
}

func (f *commonFlags) add(fs *pflag.FlagSet) {
	fs.IntVarP(&f.verbosity, "v", "v", 0, "log verbosity: 0 shows upstream warnings and volplane's info; N lets upstream's V(N) messages through")
}

// setup installs the logger and returns a context that is cancelled on
// SIGTERM or SIGINT.
func (f *commonFlags) setup(cmd *cobra.Command) (context.Context, context.CancelFunc, *slog.Logger) {
	return signalContext(cmd.Context(), f.verbosity)
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

// stopWithin waits for the stop functions in order, giving up after d so
// that SIGTERM always ends the process in time.
func stopWithin(log *slog.Logger, d time.Duration, stops ...func()) {
	// From here upstream components complain about what goes away on
	// purpose; see logging.Stopping.
	logging.Stopping()
	done := make(chan struct{})
	go func() {
		for _, s := range stops {
			s()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("components did not stop in time; exiting", "after", d)
	}
}

// serve starts the embedded control plane and volplane's controllers,
// prints the ready line, and runs until a signal or a component's
// failure; then it stops everything, controllers first. prepare, if set,
// runs once the API answers, before the controllers start.
func serve(ctx context.Context, cmd *cobra.Command, log *slog.Logger, cp controlplane.Config, ctrl controllerFlags, identitySeed string, prepare func(context.Context, *controlplane.ControlPlane) error, readyAttrs ...any) error {
	start := time.Now()
	plane, err := controlplane.Start(ctx, cp)
	if err != nil {
		return err
	}
	ctrls, err := func() (*controllers, error) {
		if prepare != nil {
			if err := prepare(ctx, plane); err != nil {
				return nil, err
			}
		}
		rest, err := plane.RESTConfig(controlplane.VolplaneControllerIdentity)
		if err != nil {
			return nil, err
		}
		return startControllers(ctx, ctrl.config(rest, identitySeed))
	}()
	if err != nil {
		plane.Stop()
		return err
	}
	log.Info("ready", append([]any{"took", time.Since(start).Round(time.Millisecond), "kubeconfig", plane.KubeconfigPath()}, readyAttrs...)...)
	fmt.Fprintf(cmd.OutOrStdout(), "volplane %s is ready: export KUBECONFIG=%s; kubectl get pv\n", cmd.Name(), plane.KubeconfigPath())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-plane.Err():
		runErr = fmt.Errorf("control plane: %w", err)
	case <-ctrls.Done():
		runErr = fmt.Errorf("controllers: %w", ctrls.Err())
	}
	stopWithin(log, 9*time.Second, ctrls.Stop, plane.Stop)
	return runErr
}
