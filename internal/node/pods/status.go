package pods

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statusInput is everything a pod's status is computed from.
type statusInput struct {
	Pod     *corev1.Pod
	Runtime *podRuntime
	// Old is the status last computed for the pod (else the API's).
	Old corev1.PodStatus
	// Reasons are the waiting reasons of containers whose start failed
	// or is held back.
	Reasons map[string]waitReason
	// Started and Ready are the probes' verdicts for a running instance.
	Started func(c *corev1.Container, id string) bool
	Ready   func(c *corev1.Container, id string) bool
	// Terminal: the pod's containers are stopped for good.
	Terminal bool
	// PodReason is a pod-level reason (DeadlineExceeded), nil for none.
	PodReason *waitReason
	NodeIP    string
	Now       metav1.Time
}

// Pod condition reasons, upstream's.
const (
	reasonPodCompleted        = "PodCompleted"
	reasonPodFailed           = "PodFailed"
	reasonContainersNotReady  = "ContainersNotReady"
	reasonNotInitialized      = "ContainersNotInitialized"
	reasonReadinessGates      = "ReadinessGatesNotReady"
	reasonSandboxNotReady     = "PodSandboxNotReady"
	msgNoSandbox              = "no pod sandbox exists"
	msgSandboxNotReady        = "pod sandbox is not ready"
	reasonContainerUnknown    = "ContainerStatusUnknown"
	podConditionReadyToStart  = corev1.PodReadyToStartContainers
	podConditionInitialized   = corev1.PodInitialized
	podConditionContainersRdy = corev1.ContainersReady
)

// kubeletConditions are the conditions the node owns.
var kubeletConditions = map[corev1.PodConditionType]bool{
	corev1.PodScheduled:       true,
	corev1.PodReady:           true,
	podConditionInitialized:   true,
	podConditionContainersRdy: true,
	podConditionReadyToStart:  true,
}

// computeStatus computes the pod's status as the kubelet's
// generateAPIPodStatus does: container statuses from the runtime's
// instances, waiting reasons, the phase, and the kubelet's conditions.
// Fields the node does not own are kept from the pod's status.
func computeStatus(in statusInput) corev1.PodStatus {
	pod := in.Pod
	s := *pod.Status.DeepCopy()
	hasInit := len(pod.Spec.InitContainers) > 0
	s.InitContainerStatuses = containerStatuses(in, pod.Spec.InitContainers, in.Old.InitContainerStatuses, hasInit, true)
	s.ContainerStatuses = containerStatuses(in, pod.Spec.Containers, in.Old.ContainerStatuses, hasInit, false)
	all := append(append([]corev1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...)

	s.Phase = podPhase(pod, all, in.Terminal, regularInstanceExists(pod, in.Runtime))
	if s.Phase != corev1.PodFailed && s.Phase != corev1.PodSucceeded {
		switch {
		case in.Old.Phase == corev1.PodFailed || in.Old.Phase == corev1.PodSucceeded:
			s.Phase = in.Old.Phase
		case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
			s.Phase = pod.Status.Phase
		}
	}
	s.Reason, s.Message = "", ""
	if s.Phase == in.Old.Phase {
		s.Reason, s.Message = in.Old.Reason, in.Old.Message
	}
	if in.PodReason != nil {
		s.Phase, s.Reason, s.Message = corev1.PodFailed, in.PodReason.Reason, in.PodReason.Message
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		s.Phase = pod.Status.Phase // no way out of a terminal phase
	}
	if in.Terminal {
		terminateContainerStatuses(pod, &s)
	}

	gen := pod.Generation
	conds := make([]corev1.PodCondition, 0, len(pod.Status.Conditions)+5)
	for _, c := range pod.Status.Conditions {
		if !kubeletConditions[c.Type] {
			conds = append(conds, c)
		}
	}
	conds = append(conds, readyToStartCondition(in.Runtime))
	conds = append(conds, initializedCondition(pod, all, s.Phase))
	cr := containersReadyCondition(pod, all, s.Phase)
	conds = append(conds, readyCondition(pod, cr, pod.Status.Conditions))
	conds = append(conds, cr)
	conds = append(conds, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	for i := range conds {
		if kubeletConditions[conds[i].Type] {
			conds[i].ObservedGeneration = gen
		}
	}
	s.Conditions = conds
	s.ObservedGeneration = gen

	if s.StartTime == nil {
		s.StartTime = in.Old.StartTime
	}
	if s.StartTime == nil {
		t := in.Now
		s.StartTime = &t
	}
	s.HostIP = in.NodeIP
	s.HostIPs = []corev1.HostIP{{IP: in.NodeIP}}
	if s.PodIP == "" {
		s.PodIP = in.NodeIP
		s.PodIPs = []corev1.PodIP{{IP: in.NodeIP}}
	}
	return s
}

// terminateContainerStatuses is the kubelet status manager's
// TerminatePod for a pod stopped for good: a container that shows no end
// (it never ran: the pod was rejected or stopped before it started) is
// shown terminated with ContainerStatusUnknown and exit code 137, the
// kubelet not knowing how it ended; regular containers once the pod got
// past its init containers, init containers up to the last one that
// shows a start.
func terminateContainerStatuses(pod *corev1.Pod, s *corev1.PodStatus) {
	unknown := func(st *corev1.ContainerStatus) {
		if st.State.Terminated == nil {
			st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason:   reasonContainerUnknown,
				Message:  "The container could not be located when the pod was terminated",
				ExitCode: 137,
			}}
		}
	}
	if podInitialized(pod, s) {
		for i := range s.ContainerStatuses {
			unknown(&s.ContainerStatuses[i])
		}
	}
	for i := range startedInitPrefix(s.InitContainerStatuses) {
		unknown(&s.InitContainerStatuses[i])
	}
}

// podInitialized is the status manager's hasPodInitialized: the pod has
// no init containers, a regular container left Waiting once, or the last
// init container listed completed (a sidecar: started).
func podInitialized(pod *corev1.Pod, s *corev1.PodStatus) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	for _, c := range s.ContainerStatuses {
		if c.LastTerminationState.Terminated != nil || c.State.Waiting == nil {
			return true
		}
	}
	l := len(s.InitContainerStatuses)
	if l == 0 || l > len(pod.Spec.InitContainers) {
		return false
	}
	last := s.InitContainerStatuses[l-1]
	if isSidecar(&pod.Spec.InitContainers[l-1]) {
		return last.State.Running != nil && last.Started != nil && *last.Started
	}
	for _, t := range []*corev1.ContainerStateTerminated{last.LastTerminationState.Terminated, last.State.Terminated} {
		if t != nil && t.ExitCode == 0 {
			return true
		}
	}
	return false
}

// startedInitPrefix is the status manager's initializedContainers: the
// init container statuses without the trailing ones that never left
// Waiting, and at least the first.
func startedInitPrefix(st []corev1.ContainerStatus) []corev1.ContainerStatus {
	for i := len(st) - 1; i >= 0; i-- {
		if st[i].State.Waiting == nil || st[i].LastTerminationState.Terminated != nil {
			return st[:i+1]
		}
	}
	if len(st) > 0 {
		return st[:1]
	}
	return nil
}

// regularInstanceExists reports whether a regular container has an
// instance: the pod got past its init containers.
func regularInstanceExists(pod *corev1.Pod, rt *podRuntime) bool {
	for _, c := range pod.Spec.Containers {
		if rt.latest(c.Name) != nil {
			return true
		}
	}
	return false
}

// containerStatuses converts the instances of the listed containers to
// their API statuses, as upstream's convertToAPIContainerStatuses.
func containerStatuses(in statusInput, containers []corev1.Container, old []corev1.ContainerStatus, hasInit, init bool) []corev1.ContainerStatus {
	oldByName := map[string]corev1.ContainerStatus{}
	for _, o := range old {
		oldByName[o.Name] = o
	}
	defaultWaiting := reasonContainerCreating
	if hasInit {
		defaultWaiting = reasonPodInitializing
	}
	out := make([]corev1.ContainerStatus, 0, len(containers))
	for i := range containers {
		c := &containers[i]
		st := corev1.ContainerStatus{
			Name:  c.Name,
			Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: defaultWaiting}},
		}
		if o, ok := oldByName[c.Name]; ok {
			if o.State.Terminated != nil {
				st = *o.DeepCopy()
			} else {
				st.RestartCount = o.RestartCount
				st.LastTerminationState = *o.LastTerminationState.DeepCopy()
			}
		}
		latest := in.Runtime.latest(c.Name)
		if latest != nil {
			last := st.LastTerminationState
			st = convertInstance(c, latest)
			st.LastTerminationState = last
			if prev := in.Runtime.previous(c.Name); prev != nil {
				st.LastTerminationState = convertInstance(c, prev).State
			}
		} else if o, ok := oldByName[c.Name]; ok && o.State.Running != nil && st.LastTerminationState.Terminated == nil {
			// It ran and vanished: say so rather than Waiting, or the
			// pod would look Pending again.
			st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
				Reason:   reasonContainerUnknown,
				Message:  "The container could not be located when the pod was deleted.  The container used to be Running",
				ExitCode: 137,
			}
			if in.Pod.DeletionTimestamp == nil {
				st.RestartCount++
			}
		}
		// A container that will be started again is Waiting, with
		// the reason its last start failed or is held back.
		skip := init && latest != nil && latest.exited() && latest.ExitCode == 0
		if !skip && !in.Terminal && in.Pod.DeletionTimestamp == nil && shouldRestart(in.Pod, c, init, latest) {
			if r, ok := in.Reasons[c.Name]; ok {
				if st.State.Terminated != nil {
					st.LastTerminationState = st.State
				}
				st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: r.Reason, Message: r.Message}}
			}
		}
		started := latest != nil && st.State.Running != nil && (init && !isSidecar(c) || in.Started(c, latest.ID))
		st.Started = &started
		switch {
		case init && !isSidecar(c):
			st.Ready = st.State.Terminated != nil && st.State.Terminated.ExitCode == 0
		default:
			st.Ready = started && in.Ready(c, latest.ID)
		}
		out = append(out, st)
	}
	return out
}

// convertInstance is an instance's API status.
func convertInstance(c *corev1.Container, inst *instance) corev1.ContainerStatus {
	image := inst.Image
	if image == "" {
		image = c.Image
	}
	st := corev1.ContainerStatus{
		Name:         c.Name,
		RestartCount: inst.RestartCount,
		Image:        image,
		ImageID:      inst.ImageRef,
		ContainerID:  containerIDScheme + inst.ID,
	}
	switch inst.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(inst.StartedAt)}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		st.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode:    inst.ExitCode,
			Reason:      inst.Reason,
			Message:     inst.Message,
			StartedAt:   metav1.NewTime(inst.StartedAt),
			FinishedAt:  metav1.NewTime(inst.FinishedAt),
			ContainerID: containerIDScheme + inst.ID,
		}
	default:
		st.State.Waiting = &corev1.ContainerStateWaiting{}
	}
	return st
}

// podPhase is upstream's getPhase (with container restart rules).
func podPhase(pod *corev1.Pod, info []corev1.ContainerStatus, terminal, initialized bool) corev1.PodPhase {
	byName := map[string]corev1.ContainerStatus{}
	for _, s := range info {
		byName[s.Name] = s
	}
	pendingInit, pendingSidecar, failedInitNotRestartable := 0, 0, 0
	unknown, running, waiting, stopped, stoppedNotRestartable, succeeded := 0, 0, 0, 0, 0, 0
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		s, ok := byName[c.Name]
		if isSidecar(c) {
			switch {
			case !ok:
				unknown++
			case s.State.Running != nil:
				if s.Started == nil || !*s.Started {
					pendingSidecar++
				}
				running++
			case s.State.Terminated != nil:
			case s.State.Waiting != nil && s.LastTerminationState.Terminated == nil:
				pendingSidecar++
				waiting++
			case s.State.Waiting != nil:
			default:
				pendingSidecar++
				unknown++
			}
			continue
		}
		switch {
		case !ok, s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if code := s.State.Terminated.ExitCode; code != 0 && !restartable(pod, c, true, code) {
				failedInitNotRestartable++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			if code := s.LastTerminationState.Terminated.ExitCode; code != 0 && !restartable(pod, c, true, code) {
				failedInitNotRestartable++
			}
		default:
			pendingInit++
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		s, ok := byName[c.Name]
		switch {
		case !ok:
			unknown++
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if !restartable(pod, c, false, s.State.Terminated.ExitCode) {
				stoppedNotRestartable++
			}
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			stopped++
			if !restartable(pod, c, false, s.LastTerminationState.Terminated.ExitCode) {
				stoppedNotRestartable++
			}
		case s.State.Waiting != nil:
			waiting++
		default:
			unknown++
		}
	}
	if failedInitNotRestartable > 0 {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecar > 0 && !initialized), waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if terminal {
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		if stopped != stoppedNotRestartable {
			return corev1.PodRunning
		}
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	}
	return corev1.PodPending
}

// restartable reports whether a container that exited with code is
// started again.
func restartable(pod *corev1.Pod, c *corev1.Container, init bool, code int32) bool {
	switch restartPolicy(pod, c, init) {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return false
}

func readyToStartCondition(rt *podRuntime) corev1.PodCondition {
	c := corev1.PodCondition{Type: podConditionReadyToStart, Status: corev1.ConditionTrue}
	switch {
	case len(rt.Sandboxes) == 0:
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, reasonSandboxNotReady, msgNoSandbox
	case !rt.Sandboxes[0].Ready:
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, reasonSandboxNotReady, msgSandboxNotReady
	}
	return c
}

func statusOf(all []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
	for _, s := range all {
		if s.Name == name {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

func initializedCondition(pod *corev1.Pod, all []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	c := corev1.PodCondition{Type: podConditionInitialized, Status: corev1.ConditionTrue}
	var incomplete []string
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		s, _ := statusOf(all, ic.Name)
		if isSidecar(ic) && (s.Started == nil || !*s.Started) || !isSidecar(ic) && !s.Ready {
			incomplete = append(incomplete, ic.Name)
		}
	}
	if phase == corev1.PodSucceeded {
		c.Reason = reasonPodCompleted
		return c
	}
	for _, rc := range pod.Spec.Containers {
		if s, ok := statusOf(all, rc.Name); ok && (s.State.Running != nil || s.State.Terminated != nil) {
			return c
		}
	}
	if len(incomplete) > 0 {
		c.Status, c.Reason = corev1.ConditionFalse, reasonNotInitialized
		c.Message = fmt.Sprintf("containers with incomplete status: %s", bracket(incomplete))
	}
	return c
}

func containersReadyCondition(pod *corev1.Pod, all []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	c := corev1.PodCondition{Type: podConditionContainersRdy, Status: corev1.ConditionTrue}
	switch phase {
	case corev1.PodSucceeded:
		c.Status, c.Reason = corev1.ConditionFalse, reasonPodCompleted
		return c
	case corev1.PodFailed:
		c.Status, c.Reason = corev1.ConditionFalse, reasonPodFailed
		return c
	}
	var unready []string
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		if s, _ := statusOf(all, ic.Name); isSidecar(ic) && !s.Ready {
			unready = append(unready, ic.Name)
		}
	}
	for _, rc := range pod.Spec.Containers {
		if s, _ := statusOf(all, rc.Name); !s.Ready {
			unready = append(unready, rc.Name)
		}
	}
	if len(unready) > 0 {
		c.Status, c.Reason = corev1.ConditionFalse, reasonContainersNotReady
		c.Message = fmt.Sprintf("containers with unready status: %s", bracket(unready))
	}
	return c
}

func readyCondition(pod *corev1.Pod, containersReady corev1.PodCondition, conds []corev1.PodCondition) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	if containersReady.Status != corev1.ConditionTrue {
		c.Status, c.Reason, c.Message = containersReady.Status, containersReady.Reason, containersReady.Message
		return c
	}
	var msgs []string
	for _, g := range pod.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range conds {
			if conds[i].Type == g.ConditionType {
				found = &conds[i]
			}
		}
		switch {
		case found == nil:
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(g.ConditionType)))
		case found.Status != corev1.ConditionTrue:
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(g.ConditionType), found.Status))
		}
	}
	if len(msgs) > 0 {
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, reasonReadinessGates, strings.Join(msgs, ", ")
	}
	return c
}

// bracket formats names as Go prints a []string: [a b].
func bracket(names []string) string {
	return "[" + strings.Join(names, " ") + "]"
}
