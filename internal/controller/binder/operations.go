package binder

import (
	"context"
	"sync"
	"time"
)

// operations runs the controller's slow work (provision, delete, recycle)
// outside the sync workers: at most one operation per key at a time, and a
// key whose last run failed waits an exponentially growing backoff before
// it may run again. After the backoff the retry function is called, so the
// owner syncs the object again: failures are retried without waiting for
// the periodic resync.
//
// With inline set, operations run in the caller's goroutine: the tests
// drive the controller step by step.
type operations struct {
	initial, max time.Duration
	inline       bool
	now          func() time.Time

	mu      sync.Mutex
	running map[string]bool
	failed  map[string]backoff
	wg      sync.WaitGroup
}

type backoff struct {
	until time.Time
	delay time.Duration
}

func newOperations(initial, max time.Duration, inline bool) *operations {
	return &operations{
		initial: initial, max: max, inline: inline, now: time.Now,
		running: map[string]bool{}, failed: map[string]backoff{},
	}
}

// Run starts fn under key unless an operation with that key is running or
// backing off; it reports whether fn was started. retry is called once the
// backoff after a failure has passed (in a goroutine of its own, or at
// once when inline).
func (o *operations) Run(ctx context.Context, key string, fn func(context.Context) error, retry func(delay time.Duration)) bool {
	o.mu.Lock()
	if o.running[key] {
		o.mu.Unlock()
		return false
	}
	if b, ok := o.failed[key]; ok && o.now().Before(b.until) && !o.inline {
		o.mu.Unlock()
		return false
	}
	o.running[key] = true
	o.mu.Unlock()

	run := func() {
		err := fn(ctx)
		o.mu.Lock()
		delete(o.running, key)
		var delay time.Duration
		if err == nil {
			delete(o.failed, key)
		} else {
			delay = o.initial
			if b, ok := o.failed[key]; ok {
				delay = min(2*b.delay, o.max)
			}
			o.failed[key] = backoff{until: o.now().Add(delay), delay: delay}
		}
		o.mu.Unlock()
		if err != nil && retry != nil {
			retry(delay)
		}
	}
	if o.inline {
		run()
		return true
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		run()
	}()
	return true
}

// Wait blocks until every started operation has returned.
func (o *operations) Wait() { o.wg.Wait() }
