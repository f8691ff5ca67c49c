package pluginwatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"volplane/internal/logging"
)

const (
	// reconcilePeriod is how often failed sockets are looked at for a
	// retry whose backoff has passed, upstream's reconciler period.
	reconcilePeriod = time.Second
	// initialBackoff and maxBackoff bound the retries of a socket that
	// failed to register, as upstream's exponential backoff.
	initialBackoff = 500 * time.Millisecond
	maxBackoff     = 2*time.Minute + 2*time.Second
	// probeTimeout bounds the dial that tells a live socket from a dead
	// one on a rescan.
	probeTimeout = time.Second
)

// Watcher registers the CSI drivers whose registration sockets appear in
// its directory, and unregisters them when the sockets go.
type Watcher struct {
	cfg  Config
	info *nodeInfo

	// mu guards owners: the registration that owns each driver name.
	mu     sync.Mutex
	owners map[string]*registration

	// sockets is the state of each socket path; only Run's goroutine
	// touches it.
	sockets map[string]*socket
}

// socket is one registration socket: whether its file is there (the
// desired state), what it registered (the actual state), and its retry
// state.
type socket struct {
	present bool
	id      fileID
	// dead: a rescan found it registered but no longer answering.
	dead bool

	reg   *registration
	regID fileID

	busy     bool
	failures int
	nextTry  time.Time
}

// fileID tells a socket file from one re-created at the same path.
type fileID struct {
	ino   uint64
	mtime time.Time
}

// opResult is what an operation on one socket ended with.
type opResult struct {
	path       string
	unregister bool
	id         fileID
	reg        *registration
	err        error
}

// New checks cfg and returns a watcher; Run starts it.
func New(cfg Config) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Watcher{
		cfg:     cfg,
		info:    &nodeInfo{client: cfg.Client, node: cfg.NodeName},
		owners:  map[string]*registration{},
		sockets: map[string]*socket{},
	}, nil
}

// Run makes the registration directory, makes sure the node's CSINode
// exists, registers the sockets already there and then follows the
// directory until ctx is done. It unregisters nothing when it stops.
func (w *Watcher) Run(ctx context.Context) error {
	log := logging.FromContext(ctx).With("component", "pluginwatcher", "dir", w.cfg.Dir)
	ctx = logging.NewContext(ctx, log)
	if err := os.MkdirAll(w.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("plugin watcher: %w", err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("plugin watcher: %w", err)
	}
	defer fsw.Close()
	if err := fsw.Add(w.cfg.Dir); err != nil {
		return fmt.Errorf("plugin watcher: watch %s: %w", w.cfg.Dir, err)
	}
	if err := w.initCSINode(ctx); err != nil {
		return nil // ctx is done
	}
	log.Info("plugin watcher started")

	var ops sync.WaitGroup
	defer ops.Wait()
	ops.Add(1)
	go func() {
		defer ops.Done()
		w.runAllocatable(ctx)
	}()
	results := make(chan opResult)
	w.scan(ctx)
	// The first round: every socket already there is tried once before
	// the drivers that did not come back are dropped from the API.
	for n := w.reconcile(ctx, &ops, results); n > 0; n-- {
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			w.apply(ctx, r)
		}
	}
	w.removeStale(ctx)

	tick := time.NewTicker(reconcilePeriod)
	defer tick.Stop()
	rescan := time.NewTicker(w.cfg.RescanPeriod)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("plugin watcher: fsnotify stopped")
			}
			w.event(ctx, ev)
		case err, ok := <-fsw.Errors:
			if !ok {
				return errors.New("plugin watcher: fsnotify stopped")
			}
			// An overflow loses events: look at the directory again.
			log.Error("fsnotify error; rescanning", "err", err)
			w.scan(ctx)
		case r := <-results:
			w.apply(ctx, r)
		case <-tick.C:
		case <-rescan.C:
			w.scan(ctx)
			w.probe(ctx)
			w.removeStale(ctx)
		}
		w.reconcile(ctx, &ops, results)
	}
}

// initCSINode makes sure the CSINode exists, as the kubelet does at
// start, retrying until it does or ctx is done.
func (w *Watcher) initCSINode(ctx context.Context) error {
	delay := time.Second
	for {
		_, err := w.info.ensureCSINode(ctx)
		if err == nil {
			return nil
		}
		logging.FromContext(ctx).Warn("publishing the CSINode; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// reconcile starts an operation for each socket whose registration
// differs from its file, and returns how many it started.
func (w *Watcher) reconcile(ctx context.Context, ops *sync.WaitGroup, results chan<- opResult) int {
	started := 0
	now := time.Now()
	for path, s := range w.sockets {
		if s.busy {
			continue
		}
		switch {
		case s.reg != nil && (!s.present || s.dead):
			reg := s.reg
			s.busy = true
			started++
			ops.Go(func() {
				w.unregister(ctx, reg)
				send(ctx, results, opResult{path: path, unregister: true})
			})
		case s.present && !s.dead && (s.reg == nil || s.id != s.regID) && !now.Before(s.nextTry):
			prior, id := s.reg, s.id
			s.busy = true
			started++
			ops.Go(func() {
				reg, err := w.register(ctx, path, prior)
				send(ctx, results, opResult{path: path, id: id, reg: reg, err: err})
			})
		case !s.present && s.reg == nil:
			delete(w.sockets, path)
		}
	}
	return started
}

func send(ctx context.Context, ch chan<- opResult, r opResult) {
	select {
	case ch <- r:
	case <-ctx.Done():
	}
}

// apply records an operation's outcome.
func (w *Watcher) apply(ctx context.Context, r opResult) {
	s := w.sockets[r.path]
	s.busy = false
	switch {
	case r.unregister:
		s.reg = nil
		if s.dead {
			s.dead = false
			w.backoff(s)
		}
	case r.err != nil:
		s.reg = nil
		w.backoff(s)
		if ctx.Err() == nil {
			// A registrar's socket appears at bind, before it listens: a
			// first refusal is usually that, and the retry succeeds.
			level := slog.LevelError
			if s.failures == 1 {
				level = slog.LevelInfo
			}
			logging.FromContext(ctx).Log(ctx, level, "plugin registration failed", "socket", r.path, "err", r.err,
				"retry-in", time.Until(s.nextTry).Round(time.Millisecond))
		}
	default:
		s.reg, s.regID, s.failures, s.nextTry = r.reg, r.id, 0, time.Time{}
	}
}

func (w *Watcher) backoff(s *socket) {
	d := initialBackoff << min(s.failures, 16)
	s.failures++
	s.nextTry = time.Now().Add(min(d, maxBackoff))
}

// event follows one fsnotify event on the directory.
func (w *Watcher) event(ctx context.Context, ev fsnotify.Event) {
	if filepath.Dir(ev.Name) != filepath.Clean(w.cfg.Dir) || strings.HasPrefix(filepath.Base(ev.Name), ".") {
		return
	}
	switch {
	case ev.Has(fsnotify.Create):
		w.see(ctx, ev.Name)
	case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
		if s, ok := w.sockets[ev.Name]; ok {
			logging.FromContext(ctx).Info("registration socket removed", "socket", ev.Name)
			s.present = false
		}
	}
}

// see records the file at path as it is now: a socket to register, or
// nothing (a file of another kind is ignored, as upstream).
func (w *Watcher) see(ctx context.Context, path string) {
	fi, err := os.Lstat(path)
	s := w.sockets[path]
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		if s != nil {
			s.present = false
		}
		return
	}
	id := fileID{mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	if s == nil {
		s = &socket{}
		w.sockets[path] = s
	}
	if !s.present || s.id != id {
		logging.FromContext(ctx).Info("registration socket found", "socket", path)
		s.present, s.id, s.dead, s.failures, s.nextTry = true, id, false, 0, time.Time{}
	}
}

// scan lists the directory again: new sockets, and ones gone without an
// event.
func (w *Watcher) scan(ctx context.Context) {
	entries, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		logging.FromContext(ctx).Error("listing the registration directory", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Type()&os.ModeSocket == 0 {
			continue
		}
		path := filepath.Join(w.cfg.Dir, e.Name())
		seen[path] = true
		w.see(ctx, path)
	}
	for path, s := range w.sockets {
		if !seen[path] {
			s.present = false
		}
	}
}

// probe dials each registered socket: one that no longer answers (its
// process died and left the file) is unregistered.
func (w *Watcher) probe(ctx context.Context) {
	for path, s := range w.sockets {
		if s.busy || s.reg == nil || !s.present {
			continue
		}
		c, err := net.DialTimeout("unix", path, probeTimeout)
		if err != nil {
			logging.FromContext(ctx).Warn("registered socket no longer answers; unregistering its driver",
				"socket", path, "driver", s.reg.name, "err", err)
			s.dead = true
			continue
		}
		c.Close()
	}
}

// removeStale drops from the API the drivers no socket registered: left
// by an earlier run, or by an unregistration whose API call failed.
func (w *Watcher) removeStale(ctx context.Context) {
	stale, err := w.info.removeStale(ctx,
		func(name string) bool { w.mu.Lock(); defer w.mu.Unlock(); return w.owners[name] != nil },
		func(key string) bool { w.mu.Lock(); defer w.mu.Unlock(); return w.keyInUseLocked(key) })
	log := logging.FromContext(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("removing drivers no socket registers", "err", err)
		}
		return
	}
	if len(stale) > 0 {
		log.Info("removed CSI drivers no socket registers from the node", "drivers", stale)
	}
}
