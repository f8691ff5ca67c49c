package pods

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/node/volumemanager"
)

func TestActiveDeadline(t *testing.T) {
	pod := testPod("dl", ctr("app"))
	deadline := int64(30)
	pod.Spec.ActiveDeadlineSeconds = &deadline
	h := newHarness(t, pod)
	pw := h.worker(pod)
	if next, _ := h.sync(pw); next > 30*time.Second {
		t.Errorf("next sync in %v, after the deadline", next)
	}
	h.clock.Step(29 * time.Second)
	h.sync(pw)
	if pw.isTerminated() {
		t.Fatal("stopped before the deadline")
	}
	h.clock.Step(time.Second)
	h.sync(pw)
	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != "DeadlineExceeded" || got.Status.Message != deadlineExceededMessage {
		t.Errorf("status %s %q %q", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	if ev := h.drainEvents(); !hasEvent(ev, "Warning DeadlineExceeded "+deadlineExceededMessage) {
		t.Errorf("events %q", ev)
	}
	if !pw.isTerminated() {
		t.Error("not terminated")
	}
}

func TestEvict(t *testing.T) {
	pod := testPod("ev", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	if pw.isTerminated() {
		t.Fatal("stopped before the eviction")
	}
	const msg = `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". `
	if !h.w.Evict(pod.UID, msg) {
		t.Fatal("Evict found no worker")
	}
	if h.w.Evict("no-such-pod", msg) {
		t.Fatal("Evict of an unknown pod reported a worker")
	}
	h.sync(pw)
	if !pw.isTerminated() {
		t.Fatal("not terminated after the eviction")
	}
	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != "Evicted" || got.Status.Message != msg {
		t.Errorf("status %s %q %q, want Failed Evicted %q", got.Status.Phase, got.Status.Reason, got.Status.Message, msg)
	}
	if ev := h.drainEvents(); !hasEvent(ev, "Warning Evicted "+msg) {
		t.Errorf("events %q", ev)
	}
}

// A pod whose volumes cannot be attached because the node is out of
// attachment slots is rejected as the kubelet's rejectPod: a Warning
// event VolumeAttachmentLimitExceeded with the error's text, the pod
// Failed with that reason and "Pod was rejected: " + the text, no
// sandbox or container ever made, and the object kept.
func TestAttachLimitRejectsPod(t *testing.T) {
	pod := testPod("lim", ctr("app"))
	h := newHarness(t, pod)
	limit := &volumemanager.VolumeAttachLimitExceededError{UnmountedVolumes: []string{"data"},
		UnattachedVolumes: []string{"data"}, VolumesNotInDSW: []string{}, OriginalError: context.DeadlineExceeded}
	const msg = "Node has reached its volume attachment limit, rejecting pod. unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded"
	h.volumes.mountErr = fmt.Errorf("waiting: %w", limit)
	pw := h.worker(pod)
	for i := 0; i < 3 && !pw.isTerminated(); i++ {
		h.sync(pw)
	}
	if !pw.isTerminated() {
		t.Fatal("the rejected pod's worker did not stop it")
	}
	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != "VolumeAttachmentLimitExceeded" || got.Status.Message != "Pod was rejected: "+msg {
		t.Errorf("status %s %q %q", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	// The kubelet's TerminatePod: a container that never ran ends unknown.
	if cs := containerStatus(t, got, "app"); cs.State.Terminated == nil || cs.State.Terminated.Reason != "ContainerStatusUnknown" ||
		cs.State.Terminated.ExitCode != 137 || cs.ContainerID != "" {
		t.Errorf("app status %+v, want terminated ContainerStatusUnknown 137 with no container ID", cs)
	}
	ev := h.drainEvents()
	if !hasEvent(ev, "Warning VolumeAttachmentLimitExceeded "+msg) {
		t.Errorf("events %q", ev)
	}
	if n := strings.Count(strings.Join(ev, "\n"), "VolumeAttachmentLimitExceeded"); n != 1 {
		t.Errorf("%d VolumeAttachmentLimitExceeded events, want 1: %q", n, ev)
	}
	if hasEvent(ev, "FailedMount") {
		t.Errorf("a FailedMount event for a rejected pod: %q", ev)
	}
	if len(h.rt.Sandboxes) != 0 || len(h.rt.Containers) != 0 {
		t.Errorf("sandboxes %d, containers %d: a rejected pod must start nothing", len(h.rt.Sandboxes), len(h.rt.Containers))
	}
	// It stays Failed and the object is kept, however often it is
	// synced; the mount wait is not tried again.
	before := strings.Count(strings.Join(h.log.get(), ","), "WaitForAttachAndMount")
	h.volumes.mountErr = nil
	h.sync(pw)
	if after := strings.Count(strings.Join(h.log.get(), ","), "WaitForAttachAndMount"); after != before {
		t.Errorf("WaitForAttachAndMount called again after the rejection")
	}
	if got := h.apiPod(pod); got.Status.Phase != corev1.PodFailed || got.Status.Reason != "VolumeAttachmentLimitExceeded" {
		t.Errorf("after another sync: %s %q", got.Status.Phase, got.Status.Reason)
	}
	if hasEvent(h.drainEvents(), "VolumeAttachmentLimitExceeded") {
		t.Error("the rejection event sent again")
	}
	if strings.Contains(strings.Join(h.log.get(), ","), "delete pod") {
		t.Error("the rejected pod's object was deleted; upstream keeps it as a Failed pod")
	}
}

func TestContainerLogChoice(t *testing.T) {
	pod := testPod("logs", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	if _, _, err := h.w.ContainerLog("default", "logs", "app", false); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("before any sync: %v", err)
	}
	h.sync(pw)
	if _, _, err := h.w.ContainerLog("default", "logs", "app", true); err == nil || !strings.Contains(err.Error(), `previous terminated container "app" in pod "logs" not found`) {
		t.Errorf("previous of a first instance: %v", err)
	}
	h.exit(pod, "app", 1)
	h.sync(pw) // restarted at once
	h.exit(pod, "app", 1)
	h.sync(pw) // CrashLoopBackOff: logs show the instance that crashed
	id, path, err := h.w.ContainerLog("default", "logs", "app", false)
	if err != nil || !strings.HasSuffix(path, "/app/1.log") {
		t.Errorf("crash-looping container's log: %s %s %v", id, path, err)
	}
	// As upstream, --previous of a crash-looping container is the same
	// last terminated instance.
	if _, path, err := h.w.ContainerLog("default", "logs", "app", true); err != nil || !strings.HasSuffix(path, "/app/1.log") {
		t.Errorf("previous: %s %v", path, err)
	}
	if _, err := h.w.ContainerID("default", "logs", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ContainerID of a waiting container: %v", err)
	}
	if _, _, err := h.w.ContainerLog("default", "logs", "nosuch", false); err == nil || !strings.Contains(err.Error(), "is not valid for pod") {
		t.Errorf("unknown container: %v", err)
	}
}

// The workers' own goroutines, through Update, Run and Delete.
func TestRunUpdateDelete(t *testing.T) {
	pod := testPod("live", ctr("app"))
	h := newHarness(t, pod)
	h.w.ctx = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.w.Update(pod) // before Run: waits for it
	go h.w.Run(ctx)
	waitFor(t, "Running", func() bool { return h.apiPod(pod).Status.Phase == corev1.PodRunning })
	if len(h.w.Pods()) != 1 || len(h.w.RunningPods()) != 1 {
		t.Errorf("Pods %d RunningPods %d", len(h.w.Pods()), len(h.w.RunningPods()))
	}
	// An exit noticed by the relist alone: the worker restarts it.
	h.exit(pod, "app", 1)
	waitFor(t, "restart", func() bool { return containerStatus(t, h.apiPod(pod), "app").RestartCount == 1 })

	// Force deletion: the object is gone, the worker stops everything.
	if err := h.client.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.w.Delete(pod)
	waitFor(t, "forgotten", func() bool { return len(h.w.Pods()) == 0 })
	calls := strings.Join(h.log.get(), ",")
	if !strings.Contains(calls, "StopPodSandbox") || !strings.Contains(calls, "RemovePodSandbox") {
		t.Errorf("calls %s", calls)
	}
	if !h.w.ContainersTerminated(pod.UID) {
		t.Error("a forgotten pod's containers are terminated")
	}
	// A late update of the removed pod starts nothing again.
	h.w.Update(pod)
	if len(h.w.Pods()) != 0 {
		t.Error("a removed pod got a second worker")
	}
}

// waitFor polls cond; the bound only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A pod whose volumes never mount can still be deleted: the deletion
// interrupts the wait.
func TestDeletionInterruptsMountWait(t *testing.T) {
	pod := testPod("stuck", ctr("app"))
	h := newHarness(t, pod)
	h.volumes.mountBlocks = true
	h.w.ctx = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.w.Run(ctx)
	h.w.Update(pod)
	waitFor(t, "the mount wait", func() bool { return strings.Contains(strings.Join(h.log.get(), ","), "WaitForAttachAndMount") })

	p := h.apiPod(pod)
	now, grace := metav1.Now(), int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := h.client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.w.Update(p)
	waitFor(t, "the pod object deleted", func() bool {
		_, err := h.client.CoreV1().Pods("default").Get(ctx, "stuck", metav1.GetOptions{})
		return err != nil
	})
	if len(h.rt.Sandboxes) != 0 {
		t.Error("a sandbox was made for a pod being deleted")
	}
}

// postStart runs right after the start, preStop before the stop.
func TestLifecycleHooks(t *testing.T) {
	c := ctr("app")
	c.Lifecycle = &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"post"}}},
		PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"pre"}}},
	}
	pod := testPod("hooks", c)
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	p := h.apiPod(pod)
	now, grace := metav1.Now(), int64(5)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync(pw)
	var seq []string
	for _, call := range h.rt.GetCalls() {
		switch call {
		case "StartContainer", "ExecSync", "StopContainer":
			seq = append(seq, call)
		}
	}
	if got := strings.Join(seq, ","); got != "StartContainer,ExecSync,ExecSync,StopContainer" {
		t.Errorf("calls %s, want the postStart exec after the start and the preStop exec before the stop", got)
	}
}

func TestFailedPostStartKillsTheContainer(t *testing.T) {
	c := ctr("app")
	c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}}
	pod := testPod("post", c)
	h := newHarness(t, pod)
	h.rt.InjectError("ExecSync", errString("exit status 1"))
	pw := h.worker(pod)
	h.sync(pw)
	ev := h.drainEvents()
	if !hasEvent(ev, "Warning FailedPostStartHook PostStartHook failed") || !hasEvent(ev, "Killing") {
		t.Errorf("events %q", ev)
	}
	if cs := containerStatus(t, h.apiPod(pod), "app"); cs.State.Waiting == nil || cs.State.Waiting.Reason != "PostStartHookError" {
		t.Errorf("state %+v", cs.State)
	}
}
