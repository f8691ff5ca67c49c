package pods

import (
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// probeView is what the actions need from the probes.
type probeView interface {
	// started reports whether a running instance has passed its
	// startup probe (true when it has none).
	started(c *corev1.Container, id string) bool
	// failed reports a liveness or startup probe that gave up on the
	// instance, with the kill message.
	failed(id string) (string, bool)
}

// action is one thing a sync does to a container: kill an instance
// (first), then maybe start a new one.
type action struct {
	Container *corev1.Container
	Init      bool
	// Kill, when set, is stopped first with KillMessage.
	Kill        *instance
	KillMessage string
	// Start asks for a new instance with RestartCount. BackoffFrom is
	// the exited instance whose finish time starts the crash-loop
	// backoff (nil when this is not a restart); Remove is a created but
	// never started leftover to remove first.
	Start        bool
	RestartCount int32
	BackoffFrom  *instance
	Remove       *instance
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// restartPolicy is the container's effective restart policy: a sidecar's
// is Always, a container may set its own, else the pod's.
func restartPolicy(pod *corev1.Pod, c *corev1.Container, init bool) corev1.RestartPolicy {
	if c.RestartPolicy != nil {
		return corev1.RestartPolicy(*c.RestartPolicy)
	}
	if init && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
		// Regular init containers retry on failure under Always.
		return corev1.RestartPolicyOnFailure
	}
	return pod.Spec.RestartPolicy
}

// shouldRestart reports whether a container with this newest instance
// gets a new one.
func shouldRestart(pod *corev1.Pod, c *corev1.Container, init bool, inst *instance) bool {
	if inst == nil {
		return true
	}
	switch inst.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return false
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		switch restartPolicy(pod, c, init) {
		case corev1.RestartPolicyAlways:
			return true
		case corev1.RestartPolicyOnFailure:
			return inst.ExitCode != 0
		default:
			return false
		}
	}
	return true
}

// nextRestartCount is the restart count of a container's next instance:
// one more than the newest that ran; a created leftover that never ran
// gives its count back.
func nextRestartCount(inst *instance) int32 {
	switch {
	case inst == nil:
		return 0
	case inst.State == runtimeapi.ContainerState_CONTAINER_CREATED:
		return inst.RestartCount
	}
	return inst.RestartCount + 1
}

// startAction is the action that replaces inst with a new instance.
func startAction(c *corev1.Container, init bool, inst *instance) action {
	a := action{Container: c, Init: init, Start: true, RestartCount: nextRestartCount(inst)}
	if inst != nil && inst.exited() {
		a.BackoffFrom = inst
	}
	if inst != nil && inst.State == runtimeapi.ContainerState_CONTAINER_CREATED {
		a.Remove = inst
	}
	return a
}

// latestIn returns the newest instance of the container in the sandbox.
func (p *podRuntime) latestIn(name, sandboxID string) *instance {
	for _, i := range p.Instances {
		if i.Name == name && i.SandboxID == sandboxID {
			return i
		}
	}
	return nil
}

// regularStarted reports whether any regular container has an instance
// in the sandbox: the pod was initialized.
func regularStarted(pod *corev1.Pod, rt *podRuntime, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		if rt.latestIn(pod.Spec.Containers[i].Name, sandboxID) != nil {
			return true
		}
	}
	return false
}

// computeActions decides, as upstream's computePodActions, what one sync
// does in the ready sandbox: init containers one at a time in order
// (sidecars keep running and count as done once started), then every
// regular container that is not running and should be; instances whose
// liveness or startup probe failed are killed and replaced under the
// restart policy.
func computeActions(pod *corev1.Pod, rt *podRuntime, sandboxID string, probes probeView) []action {
	var out []action
	initialized := regularStarted(pod, rt, sandboxID)
	initDone := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		inst := rt.latestIn(c.Name, sandboxID)
		if isSidecar(c) {
			switch {
			case inst != nil && inst.running():
				if msg, failed := probes.failed(inst.ID); failed {
					a := startAction(c, true, inst)
					a.Kill, a.KillMessage, a.BackoffFrom = inst, msg, nil
					out = append(out, a)
					initDone = initDone && initialized
				} else if !probes.started(c, inst.ID) {
					initDone = initDone && initialized
				}
			default:
				out = append(out, startAction(c, true, rt.latest(c.Name)))
				if c.StartupProbe != nil {
					initDone = initDone && initialized
				}
			}
			if !initDone {
				break
			}
			continue
		}
		if initialized {
			continue
		}
		switch {
		case inst == nil:
			out = append(out, startAction(c, true, rt.latest(c.Name)))
			initDone = false
		case inst.running():
			initDone = false
		case inst.exited() && inst.ExitCode == 0:
			continue
		default:
			if shouldRestart(pod, c, true, inst) {
				out = append(out, startAction(c, true, inst))
			}
			initDone = false
		}
		if !initDone {
			break
		}
	}
	if !initDone {
		return out
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		inst := rt.latestIn(c.Name, sandboxID)
		if inst != nil && inst.running() {
			if msg, failed := probes.failed(inst.ID); failed {
				a := action{Container: c, Kill: inst, KillMessage: msg}
				if restartPolicy(pod, c, false) != corev1.RestartPolicyNever {
					a.Start, a.RestartCount = true, inst.RestartCount+1
				}
				out = append(out, a)
			}
			continue
		}
		if inst == nil {
			// A new sandbox, or the first start: the count goes on
			// from the newest instance of any sandbox.
			out = append(out, startAction(c, false, rt.latest(c.Name)))
			continue
		}
		if shouldRestart(pod, c, false, inst) {
			out = append(out, startAction(c, false, inst))
		}
	}
	return out
}

// podDone reports whether the pod's containers have all finished for
// good: every regular container exited and will not restart, or a
// regular init container failed under restartPolicy Never.
func podDone(pod *corev1.Pod, rt *podRuntime) bool {
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if isSidecar(c) {
			continue
		}
		inst := rt.latest(c.Name)
		if inst != nil && inst.exited() && inst.ExitCode != 0 && !shouldRestart(pod, c, true, inst) {
			return true
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return false
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		inst := rt.latest(c.Name)
		if inst == nil || !inst.exited() || shouldRestart(pod, c, false, inst) {
			return false
		}
	}
	return true
}
