package pods

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/logging"
)

// ErrNotFound is returned by the lookups for an unknown pod or container.
var ErrNotFound = errors.New("not found")

// resync is how often a worker syncs its pod with nothing to wake it.
const resync = 10 * time.Second

// podWorker owns one pod: it alone starts, stops and removes the pod's
// sandbox and containers, and writes its status.
type podWorker struct {
	w         *Workers
	uid       types.UID
	name      string
	namespace string
	// orphan is a worker for a sandbox whose pod is gone.
	orphan bool
	wake   chan struct{}

	mu      sync.Mutex
	pod     *corev1.Pod
	deleted bool // the object is gone from the API
	// terminated: every container stopped and none will start again.
	terminated bool
	// cancelWait interrupts a sync blocked in WaitForAttachAndMount
	// once the pod is being deleted.
	cancelWait context.CancelFunc
	runtime    *podRuntime // the last runtime snapshot, for lookups
	// reasons are the waiting reasons of containers whose last start
	// failed or is held back (upstream's reasonCache).
	reasons map[string]waitReason
	probes  *podProbes
	// podReason is the pod-level reason and message of a pod the node
	// stopped: its active deadline passed, or it was evicted or rejected.
	podReason *waitReason
	// evicted is set by Workers.Evict: the pod is stopped for it.
	evicted *waitReason
	// rejected is set by reject: the pod is stopped for good, its
	// event already sent and podReason set.
	rejected bool
}

// waitReason is a container's waiting reason and message. A failed
// start is not tried again before NotBefore.
type waitReason struct {
	Reason, Message string
	NotBefore       time.Time
}

func newPodWorker(w *Workers, pod *corev1.Pod, orphan bool) *podWorker {
	pw := &podWorker{
		w:         w,
		uid:       pod.UID,
		name:      pod.Name,
		namespace: pod.Namespace,
		orphan:    orphan,
		wake:      make(chan struct{}, 1),
		pod:       pod,
		deleted:   orphan,
		reasons:   map[string]waitReason{},
	}
	pw.probes = newPodProbes(pw)
	pw.kick()
	return pw
}

// kick wakes the worker; it never blocks.
func (pw *podWorker) kick() {
	select {
	case pw.wake <- struct{}{}:
	default:
	}
}

// update records the pod's latest state (nil with deleted: the object is
// gone) and wakes the worker.
func (pw *podWorker) update(pod *corev1.Pod, deleted bool) {
	pw.mu.Lock()
	if pod != nil {
		pw.pod = pod
	}
	if deleted {
		pw.deleted = true
	}
	if (pw.deleted || pw.pod.DeletionTimestamp != nil) && pw.cancelWait != nil {
		pw.cancelWait()
	}
	pw.mu.Unlock()
	pw.kick()
}

func (pw *podWorker) currentPod() *corev1.Pod {
	return pw.sharedPod().DeepCopy()
}

// sharedPod is the pod object as the informer delivered it, shared with
// the informer's cache: update replaces it and nothing modifies it, so
// readers that only read need no copy.
func (pw *podWorker) sharedPod() *corev1.Pod {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.pod
}

func (pw *podWorker) isTerminated() bool {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.terminated
}

// instance returns the newest (or previous) instance of a container from
// the last runtime snapshot.
func (pw *podWorker) instance(container string, previous bool) *instance {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.runtime == nil {
		return nil
	}
	if previous {
		return pw.runtime.previous(container)
	}
	return pw.runtime.latest(container)
}

// logPath is the host path of an instance's log.
func (pw *podWorker) logPath(inst *instance) string {
	if filepath.IsAbs(inst.LogPath) {
		return inst.LogPath
	}
	pod := pw.currentPod()
	return filepath.Join(pw.w.podLogDir(pod), containerLogPath(inst.Name, inst.RestartCount))
}

// run is the worker's loop: sync on every wake or after the delay the
// last sync asked for, until the pod is finished with or the agent stops.
func (pw *podWorker) run(started <-chan struct{}) {
	<-started
	ctx := pw.w.ctx
	logger := logging.FromContext(ctx).With("pod", pw.namespace+"/"+pw.name, "uid", pw.uid)
	ctx = logging.NewContext(ctx, logger)
	timer := time.NewTimer(resync)
	defer timer.Stop()
	defer pw.probes.stopAll()
	logger.Debug("pod timeline: worker started")
	for {
		select {
		case <-ctx.Done():
			return
		case <-pw.wake:
		case <-timer.C:
		}
		next, done := pw.sync(ctx)
		if done {
			pw.w.forget(pw)
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// sync does one step of the pod's life and says when to sync again, or
// that the worker is finished with the pod.
func (pw *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	logger := logging.FromContext(ctx)
	pw.mu.Lock()
	pod := pw.pod.DeepCopy()
	deleted, terminated := pw.deleted, pw.terminated
	pw.mu.Unlock()

	rt, err := pw.w.readRuntime(ctx, pw.uid)
	if err != nil {
		logger.Warn("reading the pod's containers", "err", err)
		return time.Second, false
	}
	pw.setRuntime(rt)

	if !terminated {
		stop, reason := pw.shouldStop(pod, rt, deleted)
		if !stop {
			return pw.syncRunning(ctx, pod, rt), false
		}
		if err := pw.terminate(ctx, pod, rt, deleted, reason); err != nil {
			logger.Warn("stopping the pod", "err", err)
			return time.Second, false
		}
		pw.mu.Lock()
		pw.terminated = true
		pw.mu.Unlock()
		// The volume manager may now tear the volumes down.
		if rt, err = pw.w.readRuntime(ctx, pw.uid); err == nil {
			pw.setRuntime(rt)
		}
	}
	if !deleted && pod.DeletionTimestamp == nil {
		// Finished (Succeeded or Failed): the containers stay until
		// the pod is deleted; the volumes may go.
		if !pw.orphan {
			if err := pw.writeStatus(ctx, pod, rt, true); err != nil {
				return time.Second, false
			}
		}
		return resync, false
	}
	if err := pw.cleanup(ctx, pod, rt, deleted); err != nil {
		logger.Warn("removing the pod", "err", err)
		return time.Second, false
	}
	return 0, true
}

func (pw *podWorker) setRuntime(rt *podRuntime) {
	pw.mu.Lock()
	pw.runtime = rt
	pw.mu.Unlock()
}

// instanceName returns the container name of an instance in the last
// runtime snapshot.
func (pw *podWorker) instanceName(id string) string {
	if i := pw.instanceByID(id); i != nil {
		return i.Name
	}
	return id
}

// instanceByID returns an instance of the last runtime snapshot.
func (pw *podWorker) instanceByID(id string) *instance {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.runtime != nil {
		for _, i := range pw.runtime.Instances {
			if i.ID == id {
				return i
			}
		}
	}
	return nil
}
