package pods

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func running(name string, restarts int32) *instance {
	return &instance{ID: name + "-" + string(rune('a'+restarts)), SandboxID: "sb", Name: name, RestartCount: restarts,
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: time.Unix(100, 0)}
}

func exited(name string, restarts, code int32) *instance {
	reason := "Error"
	if code == 0 {
		reason = "Completed"
	}
	i := running(name, restarts)
	i.State, i.ExitCode, i.Reason, i.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, code, reason, time.Unix(200, 0)
	return i
}

func TestComputeStatus(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := ctr("side")
	sidecar.RestartPolicy = &always
	readyProbe := ctr("app")
	readyProbe.ReadinessProbe = &corev1.Probe{}

	type want struct {
		phase       corev1.PodPhase
		ready       corev1.ConditionStatus
		initialized corev1.ConditionStatus
		sandbox     corev1.ConditionStatus
		reason      string // the app container's waiting or terminated reason, "running"
		readyMsg    string
	}
	tests := []struct {
		name       string
		policy     corev1.RestartPolicy
		init       []corev1.Container
		containers []corev1.Container
		instances  []*instance
		noSandbox  bool
		reasons    map[string]waitReason
		notReady   bool
		terminal   bool
		podReason  *waitReason
		want       want
	}{{
		name: "no sandbox yet", noSandbox: true,
		want: want{corev1.PodPending, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionFalse, "ContainerCreating", "containers with unready status: [app]"},
	}, {
		name:      "running and ready",
		instances: []*instance{running("app", 0)},
		want:      want{corev1.PodRunning, corev1.ConditionTrue, corev1.ConditionTrue, corev1.ConditionTrue, "running", ""},
	}, {
		name: "running, readiness probe not passed", containers: []corev1.Container{readyProbe}, notReady: true,
		instances: []*instance{running("app", 0)},
		want:      want{corev1.PodRunning, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "running", "containers with unready status: [app]"},
	}, {
		name:      "crash loop",
		instances: []*instance{exited("app", 3, 1), exited("app", 2, 1)},
		reasons:   map[string]waitReason{"app": {Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=app pod=p"}},
		want:      want{corev1.PodRunning, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "CrashLoopBackOff", "containers with unready status: [app]"},
	}, {
		name: "create error", reasons: map[string]waitReason{"app": {Reason: "CreateContainerError", Message: "no command specified"}},
		want: want{corev1.PodPending, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "CreateContainerError", "containers with unready status: [app]"},
	}, {
		name: "never: completed", policy: corev1.RestartPolicyNever,
		instances: []*instance{exited("app", 0, 0)},
		want:      want{corev1.PodSucceeded, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "Completed", ""},
	}, {
		name: "never: error", policy: corev1.RestartPolicyNever,
		instances: []*instance{exited("app", 0, 2)},
		want:      want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "Error", ""},
	}, {
		name: "onFailure: success is final", policy: corev1.RestartPolicyOnFailure,
		instances: []*instance{exited("app", 1, 0), exited("app", 0, 1)},
		want:      want{corev1.PodSucceeded, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "Completed", ""},
	}, {
		name:      "always: deleted pod, all stopped, terminal",
		instances: []*instance{exited("app", 0, 143)}, terminal: true,
		want: want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "Error", ""},
	}, {
		name: "init container running", init: []corev1.Container{ctr("setup")},
		instances: []*instance{running("setup", 0)},
		want:      want{corev1.PodPending, corev1.ConditionFalse, corev1.ConditionFalse, corev1.ConditionTrue, "PodInitializing", "containers with unready status: [app]"},
	}, {
		name: "init container failed under Never", policy: corev1.RestartPolicyNever, init: []corev1.Container{ctr("setup")},
		instances: []*instance{exited("setup", 0, 1)},
		want:      want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionFalse, corev1.ConditionTrue, "PodInitializing", ""},
	}, {
		name: "sidecar and app running", init: []corev1.Container{sidecar},
		instances: []*instance{running("side", 0), running("app", 0)},
		want:      want{corev1.PodRunning, corev1.ConditionTrue, corev1.ConditionTrue, corev1.ConditionTrue, "running", ""},
	}, {
		name:      "active deadline",
		instances: []*instance{exited("app", 0, 137)}, terminal: true,
		podReason: &waitReason{Reason: "DeadlineExceeded", Message: deadlineExceededMessage},
		want:      want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionTrue, "Error", ""},
	}, {
		// The kubelet's TerminatePod: a container that never ran shows
		// an unknown end once the pod is stopped for good.
		name: "rejected before any start", noSandbox: true, terminal: true,
		podReason: &waitReason{Reason: "VolumeAttachmentLimitExceeded", Message: "Pod was rejected: ..."},
		want:      want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionFalse, "ContainerStatusUnknown", ""},
	}, {
		name: "stopped during init", init: []corev1.Container{ctr("first"), ctr("second")},
		instances: []*instance{exited("first", 0, 0)}, terminal: true,
		podReason: &waitReason{Reason: "DeadlineExceeded", Message: deadlineExceededMessage},
		want:      want{corev1.PodFailed, corev1.ConditionFalse, corev1.ConditionFalse, corev1.ConditionTrue, "PodInitializing", ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			containers := tt.containers
			if containers == nil {
				containers = []corev1.Container{ctr("app")}
			}
			pod := testPod("p", containers...)
			pod.Spec.InitContainers = tt.init
			if tt.policy != "" {
				pod.Spec.RestartPolicy = tt.policy
			}
			rt := &podRuntime{Instances: tt.instances}
			if !tt.noSandbox {
				rt.Sandboxes = []*sandbox{{ID: "sb", Ready: !tt.terminal}}
			}
			st := computeStatus(statusInput{
				Pod: pod, Runtime: rt, Old: pod.Status, Reasons: tt.reasons,
				Started:  func(*corev1.Container, string) bool { return true },
				Ready:    func(*corev1.Container, string) bool { return !tt.notReady },
				Terminal: tt.terminal, PodReason: tt.podReason, NodeIP: "10.0.0.5", Now: metav1.Now(),
			})
			p := &corev1.Pod{Status: st}
			if st.Phase != tt.want.phase {
				t.Errorf("phase = %s, want %s", st.Phase, tt.want.phase)
			}
			if got := condition(p, corev1.PodReady); got != tt.want.ready {
				t.Errorf("Ready = %s, want %s", got, tt.want.ready)
			}
			if got := condition(p, corev1.PodInitialized); got != tt.want.initialized {
				t.Errorf("Initialized = %s, want %s", got, tt.want.initialized)
			}
			if got := condition(p, corev1.PodReadyToStartContainers); got != tt.want.sandbox && !tt.terminal {
				t.Errorf("PodReadyToStartContainers = %s, want %s", got, tt.want.sandbox)
			}
			if condition(p, corev1.PodScheduled) != corev1.ConditionTrue {
				t.Error("PodScheduled not True")
			}
			for _, c := range st.Conditions {
				if c.Type == corev1.PodReady && c.Message != tt.want.readyMsg {
					t.Errorf("Ready message = %q, want %q", c.Message, tt.want.readyMsg)
				}
			}
			cs := containerStatus(t, p, "app")
			var reason string
			switch {
			case cs.State.Running != nil:
				reason = "running"
			case cs.State.Waiting != nil:
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil:
				reason = cs.State.Terminated.Reason
			}
			if reason != tt.want.reason {
				t.Errorf("app reason = %q, want %q (%+v)", reason, tt.want.reason, cs)
			}
			if tt.podReason != nil && (st.Reason != tt.podReason.Reason || st.Message != tt.podReason.Message) {
				t.Errorf("pod reason %q %q", st.Reason, st.Message)
			}
		})
	}
}

// The restart count and last state come from the newest instance and the
// one before it, as `kubectl get pods` shows RESTARTS.
func TestComputeStatusRestartsAndLastState(t *testing.T) {
	pod := testPod("p", ctr("app"))
	rt := &podRuntime{Sandboxes: []*sandbox{{ID: "sb", Ready: true}}, Instances: []*instance{running("app", 4), exited("app", 3, 137)}}
	st := computeStatus(statusInput{Pod: pod, Runtime: rt, Old: pod.Status,
		Started: func(*corev1.Container, string) bool { return true }, Ready: func(*corev1.Container, string) bool { return true },
		NodeIP: "10.0.0.5", Now: metav1.Now()})
	cs := st.ContainerStatuses[0]
	if cs.RestartCount != 4 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 137 {
		t.Errorf("status %+v", cs)
	}
	if cs.ContainerID != "volplane://app-e" {
		t.Errorf("containerID %q", cs.ContainerID)
	}
}

func TestTransitionTimesKept(t *testing.T) {
	old := metav1.NewTime(time.Unix(1000, 0))
	base := corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: old},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: old},
	}}
	now := metav1.NewTime(time.Unix(2000, 0))
	st := corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
	}}
	keepTransitionTimes(&st, base, now)
	for i, want := range []metav1.Time{old, now, now} {
		if !st.Conditions[i].LastTransitionTime.Equal(&want) {
			t.Errorf("%s: %v, want %v", st.Conditions[i].Type, st.Conditions[i].LastTransitionTime, want)
		}
	}
}

// Init containers: those up to the last that shows a start, and at least
// the first, are shown ended; the ones after it never ran and stay
// Waiting, as the kubelet's TerminatePod.
func TestTerminateInitContainerStatuses(t *testing.T) {
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonPodInitializing}}
	runningState := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	tests := []struct {
		name  string
		init  []corev1.ContainerState
		ended []bool // which init containers end up terminated
	}{
		{"none started", []corev1.ContainerState{waiting, waiting}, []bool{true, false}},
		{"first running", []corev1.ContainerState{runningState, waiting, waiting}, []bool{true, false, false}},
		{"second running", []corev1.ContainerState{waiting, runningState, waiting}, []bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod("p", ctr("app"))
			st := corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting}}}
			for i, state := range tt.init {
				name := string(rune('a' + i))
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, ctr(name))
				st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{Name: name, State: state})
			}
			terminateContainerStatuses(pod, &st)
			for i, want := range tt.ended {
				term := st.InitContainerStatuses[i].State.Terminated
				if got := term != nil && term.Reason == reasonContainerUnknown && term.ExitCode == 137; got != want {
					t.Errorf("init container %d ended = %v, want %v (%+v)", i, got, want, st.InitContainerStatuses[i].State)
				}
			}
			if st.ContainerStatuses[0].State.Waiting == nil {
				t.Errorf("app shown ended before the pod was initialized: %+v", st.ContainerStatuses[0].State)
			}
		})
	}
}
