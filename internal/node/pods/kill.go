package pods

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/logging"
)

// minGracePeriod is upstream's floor for a container's stop.
const minGracePeriod = 2

// gracePeriod is how long a container of the pod gets to stop: the
// deletion's grace period when the pod is being deleted, else
// terminationGracePeriodSeconds (default 30).
func gracePeriod(pod *corev1.Pod, _ *corev1.Container) int64 {
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// killContainer stops one instance: a Killing event, the preStop hook
// within the grace period, then StopContainer with what is left of it
// (SIGTERM, then SIGKILL). message replaces the event's default text.
func (pw *podWorker) killContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, grace int64, message, _ string) {
	w := pw.w
	if message == "" {
		message = fmt.Sprintf("Stopping container %s", c.Name)
	}
	w.cfg.Recorder.Eventf(containerRef(pod, c), corev1.EventTypeNormal, eventKilling, "%s", message)
	pw.probes.stop(id)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		if _, err := pw.runHandler(ctx, pod, c, id, c.Lifecycle.PreStop, grace); err != nil {
			logging.FromContext(ctx).Warn("preStop hook failed", "container", c.Name, "err", err)
			w.cfg.Recorder.Eventf(containerRef(pod, c), corev1.EventTypeWarning, eventFailedPreStopHook, "PreStopHook failed")
		}
		grace -= int64(time.Since(start).Seconds())
	}
	grace = max(grace, minGracePeriod)
	if err := w.cfg.Runtime.StopContainer(ctx, id, grace); err != nil && !isNotFound(err) {
		logging.FromContext(ctx).Warn("stopping a container", "container", c.Name, "id", id, "err", err)
	}
}

// terminate stops every container of the pod and its sandbox: regular
// containers together, then sidecars in reverse order, as upstream. The
// final status (Succeeded or Failed) is written.
func (pw *podWorker) terminate(ctx context.Context, pod *corev1.Pod, rt *podRuntime, deleted bool, why *waitReason) error {
	w := pw.w
	if why != nil {
		w.cfg.Recorder.Eventf(pod, corev1.EventTypeWarning, why.Reason, "%s", why.Message)
		pw.mu.Lock()
		pw.podReason = why
		pw.mu.Unlock()
	}
	grace := gracePeriod(pod, nil)
	if deleted && pod.DeletionTimestamp == nil {
		grace = 0 // forced: the object is already gone
	}
	pw.probes.stopAll()

	running := map[string]bool{}
	for _, inst := range rt.running() {
		running[inst.ID] = true
	}
	var wg sync.WaitGroup
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for _, inst := range rt.Instances {
			if inst.Name == c.Name && running[inst.ID] {
				delete(running, inst.ID)
				wg.Add(1)
				go func(id string) {
					defer wg.Done()
					pw.killContainer(ctx, pod, c, id, grace, "", "")
				}(inst.ID)
			}
		}
	}
	wg.Wait()
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &pod.Spec.InitContainers[i]
		for _, inst := range rt.Instances {
			if inst.Name == c.Name && running[inst.ID] {
				delete(running, inst.ID)
				pw.killContainer(ctx, pod, c, inst.ID, grace, "", "")
			}
		}
	}
	for id := range running {
		// An instance the spec does not name (an orphan's).
		if err := w.cfg.Runtime.StopContainer(ctx, id, minGracePeriod); err != nil && !isNotFound(err) {
			return fmt.Errorf("stopping container %s: %w", id, err)
		}
	}
	for _, s := range rt.Sandboxes {
		if s.Ready {
			if err := w.cfg.Runtime.StopPodSandbox(ctx, s.ID); err != nil && !isNotFound(err) {
				return fmt.Errorf("stopping sandbox %s: %w", s.ID, err)
			}
		}
	}
	if !pw.orphan {
		if fresh, err := w.readRuntime(ctx, pw.uid); err == nil {
			rt = fresh
			pw.setRuntime(rt)
		}
		_ = pw.writeStatus(ctx, pod, rt, true)
	}
	return nil
}

// cleanup finishes with a pod whose containers are stopped and that is
// being deleted or gone: its volumes torn down (by the volume manager),
// its directory removed when nothing is mounted beneath it, its sandbox
// removed, and last the pod object deleted (grace period 0, UID
// precondition) if it still exists.
func (pw *podWorker) cleanup(ctx context.Context, pod *corev1.Pod, rt *podRuntime, deleted bool) error {
	w := pw.w
	wctx, cancel := context.WithTimeout(ctx, mountTimeout)
	err := w.cfg.Volumes.WaitForUnmount(wctx, pod)
	cancel()
	if err != nil {
		return fmt.Errorf("waiting for the volumes to be unmounted: %w", err)
	}
	if err := removeDirIfUnmounted(w.podDir(pw.uid), w.cfg.MountPoints); err != nil {
		return err
	}
	for _, s := range rt.Sandboxes {
		if err := w.cfg.Runtime.RemovePodSandbox(ctx, s.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("removing sandbox %s: %w", s.ID, err)
		}
	}
	if pod.Name != "" {
		removeQuietly(w.podLogDir(pod))
	}
	if deleted || pw.orphan {
		return nil
	}
	if err := pw.writeStatus(ctx, pod, rt, true); err != nil {
		return err
	}
	uid := pod.UID
	err = w.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting the pod object: %w", err)
	}
	return nil
}

func removeQuietly(path string) {
	_ = os.RemoveAll(path)
}
