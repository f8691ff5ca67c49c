package pods

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
	"volplane/internal/node/volumemanager"
)

// mountTimeout bounds one wait for a pod's volumes, upstream's 2m3s.
const mountTimeout = 2*time.Minute + 3*time.Second

// errorRetry is how soon a sync that failed is tried again.
const errorRetry = 10 * time.Second

// shouldStop reports whether the pod's containers must stop now: the
// object is gone or being deleted, the pod is finished (by the API's
// phase or by its containers), activeDeadlineSeconds passed, or the pod
// was evicted or rejected. why is the pod-level reason of a stop the
// node decided (DeadlineExceeded, Evicted), nil otherwise; a rejection
// has set its own (reject).
func (pw *podWorker) shouldStop(pod *corev1.Pod, rt *podRuntime, deleted bool) (stop bool, why *waitReason) {
	pw.mu.Lock()
	evicted, rejected := pw.evicted, pw.rejected
	pw.mu.Unlock()
	switch {
	case deleted, pod.DeletionTimestamp != nil:
		return true, nil
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return true, nil
	case rejected:
		return true, nil // reject sent the event and set podReason
	case evicted != nil:
		return true, evicted
	case pw.pastDeadline(pod):
		return true, &waitReason{Reason: eventDeadlineExceeded, Message: deadlineExceededMessage}
	}
	return podDone(pod, rt), nil
}

// pastDeadline reports whether activeDeadlineSeconds have passed since
// the pod started on this node.
func (pw *podWorker) pastDeadline(pod *corev1.Pod) bool {
	if pod.Spec.ActiveDeadlineSeconds == nil {
		return false
	}
	start := pod.Status.StartTime
	if st, ok := pw.w.status.get(pod.UID); ok && st.StartTime != nil {
		start = st.StartTime
	}
	if start == nil {
		return false
	}
	return pw.w.now().Sub(start.Time) >= time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second
}

// deadlineWait is how long until the pod's active deadline, or resync.
func (pw *podWorker) deadlineWait(pod *corev1.Pod) time.Duration {
	st, ok := pw.w.status.get(pod.UID)
	if pod.Spec.ActiveDeadlineSeconds == nil || !ok || st.StartTime == nil {
		return resync
	}
	d := time.Until(st.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second))
	return max(min(d, resync), 0)
}

// syncRunning brings a pod that should run one step closer: volumes,
// sandbox, then the containers computeActions names. It returns when to
// sync again.
func (pw *podWorker) syncRunning(ctx context.Context, pod *corev1.Pod, rt *podRuntime) time.Duration {
	w := pw.w
	logger := logging.FromContext(ctx)
	if err := w.ensurePodDirs(pod); err != nil {
		logger.Warn("preparing the pod directory", "err", err)
		return errorRetry
	}
	if _, ok := w.status.get(pod.UID); !ok {
		// The pod is seen: Pending, ContainerCreating, before any wait.
		_ = pw.writeStatus(ctx, pod, rt, false)
	}
	if err := pw.waitForVolumes(ctx, pod); err != nil {
		if ctx.Err() != nil || pw.stopping() {
			return 0
		}
		var limit *volumemanager.VolumeAttachLimitExceededError
		if errors.As(err, &limit) {
			pw.reject(pod, volumemanager.VolumeAttachmentLimitExceededReason, limit.Error())
			return 0 // the next sync stops the pod and writes Failed
		}
		w.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, eventFailedMount, "Unable to attach or mount volumes: %v", err)
		_ = pw.writeStatus(ctx, pod, rt, false)
		return time.Second
	}
	logger.Debug("pod timeline: volumes ready")

	sb := rt.readySandbox()
	if sb == nil {
		var err error
		if rt, err = pw.newSandbox(ctx, pod, rt); err != nil {
			w.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, eventFailedCreateSandbox, "Failed to create pod sandbox: %v", errMessage(err))
			_ = pw.writeStatus(ctx, pod, rt, false)
			return errorRetry
		}
		if sb = rt.readySandbox(); sb == nil {
			return time.Second
		}
		logger.Debug("pod timeline: sandbox created", "sandbox", sb.ID)
	}
	sbCfg := w.sandboxConfig(pod, sb.Attempt)

	next := pw.deadlineWait(pod)
	for _, a := range computeActions(pod, rt, sb.ID, pw.probes) {
		if a.Kill != nil {
			pw.killContainer(ctx, pod, a.Container, a.Kill.ID, gracePeriod(pod, a.Container), a.KillMessage, "")
		}
		if !a.Start {
			continue
		}
		if wait, held := pw.retryHold(a.Container.Name); held {
			next = min(next, wait)
			continue
		}
		if wait, held := pw.backoffHold(pod, a); held {
			next = min(next, wait)
			continue
		}
		if a.Remove != nil {
			if err := w.cfg.Runtime.RemoveContainer(ctx, a.Remove.ID); err != nil && !isNotFound(err) {
				logger.Warn("removing a container that never started", "container", a.Container.Name, "err", err)
			}
		}
		err := pw.startContainer(ctx, pod, sb.ID, sbCfg, a.Container, a.RestartCount)
		var se *startError
		switch {
		case errors.As(err, &se):
			pw.setReason(a.Container.Name, &waitReason{Reason: se.Reason, Message: se.Message, NotBefore: w.now().Add(errorRetry)})
			next = min(next, errorRetry)
		case err != nil:
			logger.Warn("starting a container", "container", a.Container.Name, "err", err)
			next = min(next, errorRetry)
		default:
			pw.setReason(a.Container.Name, nil)
		}
		if a.Init && !isSidecar(a.Container) {
			break
		}
	}
	if fresh, err := w.readRuntime(ctx, pw.uid); err == nil {
		rt = fresh
		pw.setRuntime(rt)
	}
	pw.removeOldInstances(ctx, pod, rt)
	pw.probes.sync(ctx, pod, rt)
	if err := pw.writeStatus(ctx, pod, rt, false); err != nil {
		next = min(next, time.Second)
	}
	logger.Debug("pod timeline: synced", "containers", len(rt.Instances))
	return next
}

// backoffHold applies the crash-loop backoff to restarting a container:
// the first restart is immediate, the next ones wait 10 s doubling to
// 5 min from when the last instance finished.
func (pw *podWorker) backoffHold(pod *corev1.Pod, a action) (time.Duration, bool) {
	if a.BackoffFrom == nil {
		return 0, false
	}
	b := pw.w.backoff
	key := backoffKey(pod, a.Container)
	ts := a.BackoffFrom.FinishedAt
	if b.IsInBackOffSince(key, ts) {
		d := b.Get(key)
		r := waitReason{Reason: reasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, a.Container.Name, formatPod(pod))}
		pw.mu.Lock()
		prev, had := pw.reasons[a.Container.Name]
		pw.mu.Unlock()
		// One event per wait, however often the pod is synced during it.
		if !had || prev != r {
			pw.w.cfg.Recorder.Eventf(containerRef(pod, a.Container), corev1.EventTypeWarning, eventBackOff,
				"Back-off restarting failed container %s in pod %s", a.Container.Name, formatPod(pod))
		}
		pw.setReason(a.Container.Name, &r)
		return max(time.Until(ts.Add(d)), 0) + 10*time.Millisecond, true
	}
	b.Next(key, ts)
	return 0, false
}

// retryHold keeps a container whose start failed from being tried again
// before its retry time, however often the pod is synced meanwhile.
func (pw *podWorker) retryHold(container string) (time.Duration, bool) {
	pw.mu.Lock()
	r, ok := pw.reasons[container]
	pw.mu.Unlock()
	if !ok || r.NotBefore.IsZero() {
		return 0, false
	}
	if d := r.NotBefore.Sub(pw.w.now()); d > 0 {
		return d, true
	}
	return 0, false
}

func backoffKey(pod *corev1.Pod, c *corev1.Container) string {
	return string(pod.UID) + "/" + c.Name
}

func (pw *podWorker) setReason(container string, r *waitReason) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if r == nil {
		delete(pw.reasons, container)
		return
	}
	pw.reasons[container] = *r
}

// stopping reports whether the pod is being deleted or gone.
func (pw *podWorker) stopping() bool {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.deleted || pw.pod.DeletionTimestamp != nil
}

// waitForVolumes waits for the pod's volumes, interrupted when the pod is
// deleted meanwhile.
func (pw *podWorker) waitForVolumes(ctx context.Context, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, mountTimeout)
	defer cancel()
	pw.mu.Lock()
	pw.cancelWait = cancel
	pw.mu.Unlock()
	defer func() {
		pw.mu.Lock()
		pw.cancelWait = nil
		pw.mu.Unlock()
	}()
	if pw.stopping() {
		return context.Canceled
	}
	return pw.w.cfg.Volumes.WaitForAttachAndMount(ctx, pod)
}

// reject is the kubelet's rejectPod for a pod the node cannot run (its
// volumes cannot be attached: the node is out of attachment slots): a
// Warning event with reason and message, and the pod Failed with reason
// and "Pod was rejected: <message>". The pod is stopped for good by the
// next sync; its containers never start, its volumes are torn down, and
// the object stays as a Failed pod for its controller to replace.
func (pw *podWorker) reject(pod *corev1.Pod, reason, message string) {
	pw.w.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, reason, "%s", message)
	pw.mu.Lock()
	pw.rejected = true
	pw.podReason = &waitReason{Reason: reason, Message: "Pod was rejected: " + message}
	pw.mu.Unlock()
}

// newSandbox replaces a missing or dead sandbox: containers of the old
// one are stopped, the old one too, and a new one with the next attempt
// is run. It returns the runtime as it is afterwards.
func (pw *podWorker) newSandbox(ctx context.Context, pod *corev1.Pod, rt *podRuntime) (*podRuntime, error) {
	w := pw.w
	for _, inst := range rt.running() {
		pw.killContainer(ctx, pod, specOf(pod, inst.Name), inst.ID, 0, "", "")
	}
	attempt := uint32(0)
	for _, s := range rt.Sandboxes {
		attempt = max(attempt, s.Attempt+1)
		if s.Ready {
			if err := w.cfg.Runtime.StopPodSandbox(ctx, s.ID); err != nil && !isNotFound(err) {
				return rt, fmt.Errorf("stopping the old sandbox: %w", err)
			}
		}
	}
	if _, err := w.cfg.Runtime.RunPodSandbox(ctx, w.sandboxConfig(pod, attempt), ""); err != nil {
		return rt, err
	}
	fresh, err := w.readRuntime(ctx, pw.uid)
	if err != nil {
		return rt, err
	}
	pw.setRuntime(fresh)
	return fresh, nil
}

// removeOldInstances keeps the newest two instances of each container
// (the current one and the previous, for logs --previous) and removes
// older exited ones with their logs, as the kubelet's container GC.
func (pw *podWorker) removeOldInstances(ctx context.Context, pod *corev1.Pod, rt *podRuntime) {
	seen := map[string]int{}
	for _, inst := range rt.Instances {
		seen[inst.Name]++
		if seen[inst.Name] <= 2 || inst.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		if err := pw.w.cfg.Runtime.RemoveContainer(ctx, inst.ID); err != nil && !isNotFound(err) {
			logging.FromContext(ctx).Warn("removing an old container", "container", inst.Name, "id", inst.ID, "err", err)
			continue
		}
		removeQuietly(pw.logPath(inst))
		removeQuietly(pw.w.termLogHostPath(pod.UID, inst.Name, inst.RestartCount))
	}
}

// specOf returns the container's spec by name; a name the spec does not
// have (an orphan's) gets a bare one.
func specOf(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return &corev1.Container{Name: name}
}
