// Package component runs volplane's long-running parts in one process:
// `up`, `server` and `node` each list their components (control plane,
// scheduler, controllers, node agent, built-in driver, ...) and the
// runner starts them in that order, each only once the one before it
// serves, and stops them in reverse order, so that nothing loses what it
// depends on while it is still stopping.
//
// A component is one function, Run, that serves until its context is
// cancelled. It calls ready once it serves; a Run that returns before its
// context is cancelled, with or without an error, is a failure of the
// whole process, and everything is stopped.
//
// This package knows no particular component.
package component

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"volplane/internal/logging"
)

// Component is one long-running part of the process.
type Component struct {
	// Name names the component in logs and errors.
	Name string
	// Run serves until ctx is cancelled and then returns, nil on a clean
	// stop. It calls ready once the components after it may rely on it.
	Run func(ctx context.Context, ready func()) error
}

// Runner starts and stops components.
type Runner struct {
	// Components in dependency order.
	Components []Component
	// StopTimeout bounds the whole stop, so that SIGTERM always ends
	// the process in time. Default 9 s.
	StopTimeout time.Duration
	// Ready, if set, is called once every component is ready.
	Ready func()
}

type running struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Run starts the components in order and runs them until ctx is done or
// one of them fails; then it stops the started ones in reverse order. It
// returns the first failure, or nil after a stop asked for through ctx.
func (r *Runner) Run(ctx context.Context) error {
	log := logging.FromContext(ctx)
	failed := make(chan *running, len(r.Components))
	var started []*running
	var runErr error

start:
	for _, c := range r.Components {
		rc, ready := r.start(ctx, c, failed)
		started = append(started, rc)
		select {
		case <-ready:
		case f := <-failed:
			runErr = f.failure()
			break start
		case <-ctx.Done():
			break start
		}
	}
	if runErr == nil && ctx.Err() == nil {
		if r.Ready != nil {
			r.Ready()
		}
		select {
		case <-ctx.Done():
			log.Info("stopping")
		case f := <-failed:
			runErr = f.failure()
		}
	}
	r.stop(ctx, started)
	return runErr
}

func (r *Runner) start(ctx context.Context, c Component, failed chan<- *running) (*running, <-chan struct{}) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rc := &running{name: c.Name, cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(rc.done)
		rc.err = c.Run(cctx, func() { once.Do(func() { close(ready) }) })
		if cctx.Err() == nil {
			failed <- rc
		}
	}()
	return rc, ready
}

func (rc *running) failure() error {
	if rc.err == nil {
		return fmt.Errorf("%s stopped on its own", rc.name)
	}
	return fmt.Errorf("%s: %w", rc.name, rc.err)
}

// stop cancels the started components in reverse order, waiting for each
// before the next, within StopTimeout in all.
func (r *Runner) stop(ctx context.Context, started []*running) {
	log := logging.FromContext(ctx)
	// From here upstream components complain about what goes away on
	// purpose; see logging.Stopping.
	logging.Stopping()
	timeout := r.StopTimeout
	if timeout == 0 {
		timeout = 9 * time.Second
	}
	deadline := time.After(timeout)
	for i := len(started) - 1; i >= 0; i-- {
		rc := started[i]
		rc.cancel()
		select {
		case <-rc.done:
			if rc.err != nil && !errors.Is(rc.err, context.Canceled) {
				log.Warn("component stopped with an error", "component", rc.name, "err", rc.err)
			}
		case <-deadline:
			log.Warn("components did not stop in time; exiting", "after", timeout, "waiting for", rc.name)
			return
		}
	}
}
