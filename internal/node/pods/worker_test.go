package pods

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodReachesRunning(t *testing.T) {
	pod := testPod("web", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)

	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodRunning {
		t.Fatalf("phase = %s, want Running; status %+v", got.Status.Phase, got.Status)
	}
	for _, c := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if s := condition(got, c); s != corev1.ConditionTrue {
			t.Errorf("condition %s = %q, want True", c, s)
		}
	}
	cs := containerStatus(t, got, "app")
	if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 {
		t.Errorf("container status = %+v", cs)
	}
	if !strings.HasPrefix(cs.ContainerID, "volplane://") {
		t.Errorf("containerID = %q", cs.ContainerID)
	}
	if got.Status.PodIP != "10.0.0.5" || got.Status.HostIP != "10.0.0.5" {
		t.Errorf("podIP/hostIP = %s/%s", got.Status.PodIP, got.Status.HostIP)
	}
	ev := h.drainEvents()
	for _, want := range []string{`Pulled Container image "busybox" already present on machine`, "Created Container created", "Started Container started"} {
		if !hasEvent(ev, want) {
			t.Errorf("no event %q in %q", want, ev)
		}
	}
	// A second sync changes nothing: no new container, no status write.
	patches := countActions(h, "patch")
	h.sync(pw)
	if n := len(h.rt.Containers); n != 1 {
		t.Errorf("%d containers after a second sync", n)
	}
	if countActions(h, "patch") != patches {
		t.Errorf("an unchanged status was written again")
	}
	// The container config carried the sandbox's log layout.
	if p, err := h.w.ContainerLogPath("default", "web", "app", false); err != nil || !strings.HasSuffix(p, "/logs/pods/default_web_web-uid/app/0.log") {
		t.Errorf("ContainerLogPath = %q, %v", p, err)
	}
	if id, err := h.w.ContainerID("default", "web", "app"); err != nil || "volplane://"+id != cs.ContainerID {
		t.Errorf("ContainerID = %q, %v", id, err)
	}
}

func countActions(h *harness, verb string) int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == verb {
			n++
		}
	}
	return n
}

func TestCrashLoopBackOffGrows(t *testing.T) {
	pod := testPod("crash", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)

	// First exit: restarted at once, as upstream.
	h.exit(pod, "app", 1)
	h.sync(pw)
	if cs := containerStatus(t, h.apiPod(pod), "app"); cs.State.Running == nil || cs.RestartCount != 1 {
		t.Fatalf("after the first crash: %+v", cs)
	}
	// Each later exit waits: 10s, then 20s, then 40s.
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		h.exit(pod, "app", 1)
		h.drainEvents()
		h.sync(pw)
		got := h.apiPod(pod)
		cs := containerStatus(t, got, "app")
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
			t.Fatalf("crash %d: state = %+v, want CrashLoopBackOff", i+2, cs.State)
		}
		if !strings.Contains(cs.State.Waiting.Message, "back-off "+want.String()+" restarting failed container=app pod=crash_default(crash-uid)") {
			t.Errorf("crash %d: message %q, want back-off %s", i+2, cs.State.Waiting.Message, want)
		}
		if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 || cs.LastTerminationState.Terminated.Reason != "Error" {
			t.Errorf("crash %d: lastState = %+v", i+2, cs.LastTerminationState)
		}
		if got.Status.Phase != corev1.PodRunning || condition(got, corev1.PodReady) != corev1.ConditionFalse {
			t.Errorf("crash %d: phase %s ready %s", i+2, got.Status.Phase, condition(got, corev1.PodReady))
		}
		if ev := h.drainEvents(); !hasEvent(ev, "BackOff Back-off restarting failed container app in pod crash_default(crash-uid)") {
			t.Errorf("crash %d: events %q", i+2, ev)
		}
		// Not yet: one second short of the backoff; no second event.
		h.clock.Step(want - time.Second)
		h.sync(pw)
		if ev := h.drainEvents(); hasEvent(ev, "BackOff") {
			t.Errorf("crash %d: a second BackOff event in the same wait: %q", i+2, ev)
		}
		if cs := containerStatus(t, h.apiPod(pod), "app"); cs.State.Running != nil {
			t.Fatalf("crash %d: restarted before the backoff", i+2)
		}
		h.clock.Step(time.Second)
		h.sync(pw)
		cs = containerStatus(t, h.apiPod(pod), "app")
		if cs.State.Running == nil || cs.RestartCount != int32(i+2) {
			t.Fatalf("crash %d: after the backoff %+v", i+2, cs)
		}
	}
	// Old instances beyond the previous one are removed.
	if n := len(h.rt.Containers); n != 2 {
		t.Errorf("%d instances kept, want 2 (current and previous)", n)
	}
}

func TestGracefulDeletionOrder(t *testing.T) {
	pod := testPod("del", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	if pw.isTerminated() {
		t.Fatal("terminated while running")
	}

	// kubectl delete: the API sets deletionTimestamp and the grace period.
	now := metav1.Now()
	grace := int64(7)
	p := h.apiPod(pod)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.log.calls = nil
	next, done := h.sync(pw)
	if !done {
		t.Fatalf("worker not done after deletion (next %v)", next)
	}
	want := []string{
		"StopContainer del_default_del-uid_0_app_0",
		"StopPodSandbox",
		"WaitForUnmount dirExists=true",
		"RemovePodSandbox",
		"delete pod (pod dirs left: 0, true)",
	}
	if got := h.log.get(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !pw.isTerminated() || !h.w.ContainersTerminated(pod.UID) {
		t.Error("ContainersTerminated false after the stop")
	}
	var deleteOpts *metav1.DeleteOptions
	for _, a := range h.client.Actions() {
		if d, ok := a.(interface{ GetDeleteOptions() metav1.DeleteOptions }); ok && a.GetVerb() == "delete" {
			o := d.GetDeleteOptions()
			deleteOpts = &o
		}
	}
	if deleteOpts == nil || deleteOpts.GracePeriodSeconds == nil || *deleteOpts.GracePeriodSeconds != 0 ||
		deleteOpts.Preconditions == nil || *deleteOpts.Preconditions.UID != pod.UID {
		t.Errorf("delete options = %+v", deleteOpts)
	}
	if ev := h.drainEvents(); !hasEvent(ev, "Killing Stopping container app") {
		t.Errorf("no Killing event in %q", ev)
	}
}

func TestAdoptionAfterRestart(t *testing.T) {
	pod := testPod("adopt", ctr("app"), ctr("side"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	h.exit(pod, "app", 2)
	h.sync(pw) // one restart counted before the agent dies
	before := h.apiPod(pod)

	// A new agent on the same runtime (kill -9 of the old one).
	h2 := newHarnessOn(t, h.rt.FakeRuntimeService, before)
	if !h2.w.present[pod.UID] || h2.w.ContainersTerminated(pod.UID) {
		t.Fatal("a pod found running must keep its volumes until adopted")
	}
	h2.rt.Lock()
	h2.rt.Called = nil
	h2.rt.Unlock()
	pw2 := h2.worker(before)
	h2.sync(pw2)
	for _, c := range h2.rt.GetCalls() {
		if c == "CreateContainer" || c == "StartContainer" || c == "RunPodSandbox" {
			t.Errorf("adoption called %s", c)
		}
	}
	after := h2.apiPod(pod)
	for _, name := range []string{"app", "side"} {
		b, a := containerStatus(t, before, name), containerStatus(t, after, name)
		if a.ContainerID != b.ContainerID || a.RestartCount != b.RestartCount || a.State.Running == nil || !a.Ready {
			t.Errorf("%s: before %+v\nafter %+v", name, b, a)
		}
	}
	if after.Status.Phase != corev1.PodRunning || condition(after, corev1.PodReady) != corev1.ConditionTrue {
		t.Errorf("adopted pod: phase %s ready %s", after.Status.Phase, condition(after, corev1.PodReady))
	}
}

func TestOrphanIsStoppedAndRemoved(t *testing.T) {
	pod := testPod("gone", ctr("app"))
	h := newHarness(t, pod)
	h.sync(h.worker(pod))

	h2 := newHarnessOn(t, h.rt.FakeRuntimeService) // the pod was deleted while the agent was down
	h2.w.cleanupOrphans(context.Background())
	h2.w.mu.Lock()
	pw := h2.w.workers[pod.UID]
	h2.w.mu.Unlock()
	if pw == nil || !pw.orphan {
		t.Fatal("no orphan worker")
	}
	if _, done := pw.sync(context.Background()); !done {
		t.Fatal("orphan not finished")
	}
	calls := strings.Join(h2.log.get(), ",")
	if !strings.Contains(calls, "StopContainer") || !strings.Contains(calls, "RemovePodSandbox") || strings.Contains(calls, "delete pod") {
		t.Errorf("orphan calls: %s", calls)
	}
}

func TestInitContainersInOrderThenSidecarAndApp(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := testPod("init", ctr("app"))
	side := ctr("side")
	side.RestartPolicy = &always
	pod.Spec.InitContainers = []corev1.Container{ctr("first"), side, ctr("second")}
	h := newHarness(t, pod)
	pw := h.worker(pod)

	h.sync(pw)
	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodPending || condition(got, corev1.PodInitialized) != corev1.ConditionFalse {
		t.Fatalf("phase %s initialized %s", got.Status.Phase, condition(got, corev1.PodInitialized))
	}
	if cs := containerStatus(t, got, "app"); cs.State.Waiting == nil || cs.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("app state %+v, want PodInitializing", cs.State)
	}
	if n := len(h.rt.Containers); n != 1 {
		t.Fatalf("%d containers started, want only the first init container", n)
	}
	h.exit(pod, "first", 0)
	h.sync(pw) // the sidecar and the second init container start
	if cs := containerStatus(t, h.apiPod(pod), "side"); cs.State.Running == nil {
		t.Fatalf("sidecar not running: %+v", cs)
	}
	h.exit(pod, "second", 0)
	h.sync(pw)
	got = h.apiPod(pod)
	if got.Status.Phase != corev1.PodRunning || condition(got, corev1.PodInitialized) != corev1.ConditionTrue || condition(got, corev1.PodReady) != corev1.ConditionTrue {
		t.Fatalf("phase %s initialized %s ready %s", got.Status.Phase, condition(got, corev1.PodInitialized), condition(got, corev1.PodReady))
	}
	if cs := containerStatus(t, got, "first"); cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || !cs.Ready {
		t.Errorf("first: %+v", cs)
	}
}

func TestJobPodSucceedsAndKeepsContainers(t *testing.T) {
	pod := testPod("job", ctr("app"))
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	h.exit(pod, "app", 0)
	h.sync(pw)
	got := h.apiPod(pod)
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s", got.Status.Phase)
	}
	if cs := containerStatus(t, got, "app"); cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" {
		t.Errorf("app: %+v", cs)
	}
	if !h.w.ContainersTerminated(pod.UID) {
		t.Error("a finished pod's volumes may go: ContainersTerminated must be true")
	}
	if n := len(h.rt.Containers); n != 1 {
		t.Errorf("%d containers, the finished one must stay until deletion", n)
	}
	if strings.Contains(strings.Join(h.log.get(), ","), "delete pod") {
		t.Error("a finished pod was deleted without a deletion")
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*harness, *corev1.Pod)
		wantReason string
		wantEvent  string
	}{{
		name: "no such image",
		setup: func(h *harness, p *corev1.Pod) {
			p.Spec.Containers[0].Image = "nosuch"
			h.images.InjectError("PullImage", errString("image \"nosuch:latest\" not found"))
		},
		wantReason: "CreateContainerError",
		wantEvent:  `Failed Error: image "nosuch:latest" not found`,
	}, {
		name: "no such command",
		setup: func(h *harness, p *corev1.Pod) {
			h.rt.InjectError("StartContainer", errString(`exec: "nosuch": executable file not found in $PATH`))
		},
		wantReason: "RunContainerError",
		wantEvent:  "Failed Error: exec: \"nosuch\"",
	}, {
		name: "runAsNonRoot with root",
		setup: func(h *harness, p *corev1.Pod) {
			yes, root := true, int64(0)
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &root}
		},
		wantReason: "CreateContainerConfigError",
		wantEvent:  "container's runAsUser breaks non-root policy",
	}, {
		name: "missing configmap",
		setup: func(h *harness, p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nosuch"}, Key: "k"}}}}
		},
		wantReason: "CreateContainerConfigError",
		wantEvent:  `configmap "nosuch" not found`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod("bad", ctr("app"))
			h := newHarness(t)
			tt.setup(h, pod)
			if _, err := h.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			pw := h.worker(pod)
			next, _ := h.sync(pw)
			cs := containerStatus(t, h.apiPod(pod), "app")
			if cs.State.Waiting == nil || cs.State.Waiting.Reason != tt.wantReason {
				t.Errorf("state %+v, want waiting %s", cs.State, tt.wantReason)
			}
			if ev := h.drainEvents(); !hasEvent(ev, tt.wantEvent) {
				t.Errorf("events %q, want %q", ev, tt.wantEvent)
			}
			if next > errorRetry {
				t.Errorf("next sync in %v, want a retry", next)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestFailedMountIsReported(t *testing.T) {
	pod := testPod("mnt", ctr("app"))
	h := newHarness(t, pod)
	h.volumes.mountErr = errString("unmounted volumes=[data], unattached volumes=[], failed to process volumes=[]: context deadline exceeded")
	pw := h.worker(pod)
	h.sync(pw)
	if ev := h.drainEvents(); !hasEvent(ev, "FailedMount Unable to attach or mount volumes: unmounted volumes=[data]") {
		t.Errorf("events %q", ev)
	}
	got := h.apiPod(pod)
	if cs := containerStatus(t, got, "app"); cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("state %+v", cs.State)
	}
	if condition(got, corev1.PodReadyToStartContainers) != corev1.ConditionFalse {
		t.Error("PodReadyToStartContainers should be False without a sandbox")
	}
	if len(h.rt.Sandboxes) != 0 {
		t.Error("sandbox created before the volumes")
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	c := ctr("app")
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}, FailureThreshold: 1}
	pod := testPod("live", c)
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.sync(pw)
	id, _ := h.w.ContainerID("default", "live", "app")
	// The probe gives up on the instance (what the probe loop records).
	pw.probes.mu.Lock()
	for k, cancel := range pw.probes.cancels {
		cancel()
		delete(pw.probes.cancels, k)
	}
	pw.probes.results[probeKey{id, liveness}] = false
	pw.probes.mu.Unlock()
	h.sync(pw)
	if ev := h.drainEvents(); !hasEvent(ev, "Killing Container app failed liveness probe, will be restarted") {
		t.Errorf("events %q", ev)
	}
	cs := containerStatus(t, h.apiPod(pod), "app")
	if cs.RestartCount != 1 || cs.State.Running == nil {
		t.Errorf("after liveness failure %+v", cs)
	}
	if got := h.rt.Containers[id].State; got != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("old instance state %v", got)
	}
}

// A failed start is retried after errorRetry, not on every sync the
// status writes or the relist cause.
func TestFailedStartIsRetriedLater(t *testing.T) {
	pod := testPod("retry", ctr("app"))
	h := newHarness(t, pod)
	pw := h.worker(pod)
	h.rt.InjectError("CreateContainer", errString("no command specified"))
	h.sync(pw)
	h.sync(pw)
	if n := countCalls(h, "CreateContainer"); n != 1 {
		t.Fatalf("CreateContainer called %d times before the retry time", n)
	}
	h.clock.Step(errorRetry)
	h.sync(pw)
	if n := countCalls(h, "CreateContainer"); n != 2 {
		t.Fatalf("CreateContainer called %d times after the retry time", n)
	}
	if cs := containerStatus(t, h.apiPod(pod), "app"); cs.State.Running == nil {
		t.Errorf("not running after the retry: %+v", cs.State)
	}
}

func countCalls(h *harness, name string) int {
	n := 0
	for _, c := range h.rt.GetCalls() {
		if c == name {
			n++
		}
	}
	return n
}
