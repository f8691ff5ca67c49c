package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops"
	"volplane/internal/logging"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/reconstruction"
)

// Config is what the reconciler works with.
type Config struct {
	// RootDir is the agent's root directory.
	RootDir string
	Ops     hostops.Host
	Desired *cache.Desired
	Actual  *cache.Actual
	// Store keeps the per-volume records reconstruction reads.
	Store    reconstruction.Store
	Recorder record.EventRecorder
	// Attached lists the Node's status.volumesAttached.
	Attached func() []corev1.AttachedVolume
	// Ready reports whether the desired state is complete; nothing is
	// torn down before.
	Ready func() bool
	// NodeLabels returns this node's labels, for PV nodeAffinity.
	NodeLabels func(ctx context.Context) (map[string]string, error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Validate checks that every field is set.
func (c *Config) Validate() error {
	switch {
	case c.RootDir == "":
		return errors.New("reconciler: RootDir is empty")
	case c.Ops == nil, c.Desired == nil, c.Actual == nil, c.Recorder == nil:
		return errors.New("reconciler: Ops, Desired, Actual and Recorder are required")
	case c.Attached == nil, c.Ready == nil, c.NodeLabels == nil:
		return errors.New("reconciler: Attached, Ready and NodeLabels are required")
	}
	return nil
}

// Reconciler converges the actual state on the desired one.
type Reconciler struct {
	cfg     Config
	backoff *backoff
	trigger chan struct{}

	mu      sync.Mutex
	pending map[string]bool // volume name -> operation in flight
	wg      sync.WaitGroup
}

// New returns a reconciler.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, backoff: newBackoff(cfg.Now), trigger: make(chan struct{}, 1),
		pending: map[string]bool{}}, nil
}

// Trigger asks for a pass soon.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// RetryNow forgets the backoff of the failed operations of the volumes
// match selects and asks for a pass: they run again at once. It does not
// block (plugins.Host.Retry).
func (r *Reconciler) RetryNow(match func(volumeName string) bool) {
	r.backoff.forget(match)
	r.Trigger()
}

// Run reconciles until ctx is done, then waits for the operations in
// flight.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		r.Reconcile(ctx)
		select {
		case <-ctx.Done():
			r.wg.Wait()
			return
		case <-t.C:
		case <-r.trigger:
		case <-r.cfg.Desired.Changed():
		}
	}
}

// Wait waits for the operations in flight (for tests).
func (r *Reconciler) Wait() { r.wg.Wait() }

// Reconcile makes one pass, starting operations in the background.
func (r *Reconciler) Reconcile(ctx context.Context) {
	ready := r.cfg.Ready()
	if ready {
		for _, m := range r.cfg.Actual.AllMounted() {
			if !r.cfg.Desired.Wants(m.VolumeName, m.PodUID) {
				r.start(ctx, m.VolumeName, "unmount/"+string(m.PodUID), func(ctx context.Context) error {
					return r.tearDown(ctx, m)
				})
			}
		}
		for _, d := range r.cfg.Actual.UnusedDevices() {
			if !r.cfg.Desired.HasVolume(d.VolumeName) {
				r.start(ctx, d.VolumeName, "unmountdevice", func(ctx context.Context) error {
					return r.unmountDevice(ctx, d)
				})
			}
		}
	}
	attached := r.attachedSet()
	for _, v := range r.cfg.Desired.VolumesToMount() {
		if v.Attachable && !AttachVerified(v, attached, r.cfg.Actual) {
			continue
		}
		m, mounted := r.cfg.Actual.Mounted(v.VolumeName, v.Pod.UID)
		if mounted && !m.Uncertain && !(m.RemountRequested && requiresRemount(v)) {
			continue
		}
		if dm, ok := v.Plugin.(plugins.DeviceMounter); ok && (!v.Spec.Block || isPodBlockMapper(v.Plugin)) && canDeviceMount(dm, v.Spec) {
			if d, _ := r.cfg.Actual.Device(v.VolumeName); !d.Mounted || d.Uncertain {
				r.start(ctx, v.VolumeName, "mountdevice", func(ctx context.Context) error {
					return r.mountDevice(ctx, v, dm)
				})
				continue
			}
		}
		r.start(ctx, v.VolumeName, "mount/"+string(v.Pod.UID), func(ctx context.Context) error {
			return r.setUp(ctx, v)
		})
	}
}

// canDeviceMount lets a DeviceMounter say that one of its volumes is
// set up without a device mount (a CSI inline volume, as upstream's
// CanDeviceMount).
func canDeviceMount(dm plugins.DeviceMounter, spec *plugins.Spec) bool {
	c, ok := dm.(interface{ CanDeviceMount(*plugins.Spec) bool })
	return !ok || c.CanDeviceMount(spec)
}

func isPodBlockMapper(p plugins.Plugin) bool {
	_, ok := p.(plugins.PodBlockMapper)
	return ok
}

func requiresRemount(v cache.VolumeToMount) bool {
	rm, ok := v.Plugin.(plugins.Remounter)
	return ok && rm.RequiresRemount(v.Spec)
}

// AttachVerified is upstream's VerifyControllerAttachedVolume for an
// attachable volume: the Node's status.volumesAttached (attached) lists
// it, and, unless the actual state already has it (mounted for another
// pod, or found by reconstruction after a restart), a successful write of
// the Node's status has listed it in volumesInUse (v.ReportedInUse), so
// the attach/detach controller cannot detach it while it is staged. Until
// then the volume waits without an event, as upstream's, and counts as
// unattached.
func AttachVerified(v cache.VolumeToMount, attached map[corev1.UniqueVolumeName]bool, actual *cache.Actual) bool {
	if !attached[corev1.UniqueVolumeName(v.VolumeName)] {
		return false
	}
	if v.ReportedInUse {
		return true
	}
	_, known := actual.Device(v.VolumeName)
	return known
}

func (r *Reconciler) attachedSet() map[corev1.UniqueVolumeName]bool {
	out := map[corev1.UniqueVolumeName]bool{}
	for _, a := range r.cfg.Attached() {
		out[a.Name] = true
	}
	return out
}

// start runs op in the background unless an operation on volume is in
// flight or op's key is backing off.
func (r *Reconciler) start(ctx context.Context, volume, kind string, op func(context.Context) error) {
	key := kind + "|" + volume
	r.mu.Lock()
	if r.pending[volume] || !r.backoff.allowed(key) {
		r.mu.Unlock()
		return
	}
	r.pending[volume] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := op(ctx)
		if err != nil {
			delay := r.backoff.failed(key)
			logging.FromContext(ctx).Warn("volume operation failed", "volume", volume, "operation", kind,
				"retryIn", delay, "err", err)
		} else {
			r.backoff.succeeded(key)
		}
		r.mu.Lock()
		delete(r.pending, volume)
		r.mu.Unlock()
		r.Trigger()
	}()
}

// event emits a warning on the pod with upstream's wording. The volume
// is named as upstream's volume spec names it: the PV for a claim's
// volume, the pod's volume name otherwise.
func (r *Reconciler) event(v cache.VolumeToMount, reason, prefix string, err error) error {
	name := v.OuterName
	if v.Spec != nil {
		name = plugins.SpecName(v.Spec)
	}
	msg := fmt.Sprintf("%s for volume %q : %v", prefix, name, err)
	r.cfg.Recorder.Event(v.Pod, corev1.EventTypeWarning, reason, msg)
	return errors.New(msg)
}
