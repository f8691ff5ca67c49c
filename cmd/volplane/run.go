package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"volplane/internal/controller"
	"volplane/internal/controller/all"
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

// controllerFlags configure volplane's controller manager and its
// controllers.
type controllerFlags struct {
	metricsListen string
	disabled      []string
	workers       int
	options       all.Options
}

func (f *controllerFlags) add(fs *pflag.FlagSet) {
	f.options = all.DefaultOptions()
	f.options.AddFlags(fs)
	fs.StringVar(&f.metricsListen, "controller-metrics-listen", "", "loopback HOST:PORT where volplane's controllers serve /metrics (off when empty)")
	fs.StringSliceVar(&f.disabled, "disable-controllers", nil, "volplane controllers not to run, by name")
	fs.IntVar(&f.workers, "controller-workers", 4, "workers per controller queue")
}

// config builds the controller manager's Config. identitySeed makes the
// Lease identity stable across restarts of one server (its data dir), so
// a restarted server takes its own Lease back at once while another
// server waits for it to expire.
func (f *controllerFlags) config(restCfg *rest.Config, identitySeed string) controller.Config {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(identitySeed))
	return controller.Config{
		REST:          restCfg,
		Controllers:   all.DescriptorsFor(f.options),
		Disabled:      f.disabled,
		LeaderElect:   true,
		Identity:      host + "_" + hex.EncodeToString(sum[:6]),
		Workers:       f.workers,
		MetricsListen: f.metricsListen,
	}
}

// controllers is a running controller manager.
type controllers struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// startControllers runs the controller manager until Stop or ctx is done.
func startControllers(ctx context.Context, cfg controller.Config) (*controllers, error) {
	m, err := controller.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &controllers{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = m.Run(ctx)
	}()
	return c, nil
}

// Done is closed when the manager has stopped; Err then says why.
func (c *controllers) Done() <-chan struct{} { return c.done }
func (c *controllers) Err() error            { return c.err }

// Stop stops the manager and waits for it.
func (c *controllers) Stop() {
	c.cancel()
	<-c.done
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
