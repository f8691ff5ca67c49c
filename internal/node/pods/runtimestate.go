package pods

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The labels and annotations set on sandboxes and containers, upstream's
// io.kubernetes.* names, so that a restarted agent (or crictl) knows
// which pod and container each belongs to.
const (
	labelPodName        = "io.kubernetes.pod.name"
	labelPodNamespace   = "io.kubernetes.pod.namespace"
	labelPodUID         = "io.kubernetes.pod.uid"
	labelContainerName  = "io.kubernetes.container.name"
	annoRestartCount    = "io.kubernetes.container.restartCount"
	annoTermMsgPath     = "io.kubernetes.container.terminationMessagePath"
	annoTermMsgPolicy   = "io.kubernetes.container.terminationMessagePolicy"
	annoPodGracePeriod  = "io.kubernetes.pod.terminationGracePeriod"
	annoContainerGrace  = "io.kubernetes.container.terminationGracePeriod"
	containerIDScheme   = "volplane://"
	maxTermMessageBytes = 4096
)

// sandbox is one pod sandbox as the runtime reports it.
type sandbox struct {
	ID        string
	Ready     bool
	Attempt   uint32
	CreatedAt time.Time
}

// instance is one container of a pod as the runtime reports it: each
// restart is a new instance with the next restart count.
type instance struct {
	ID           string
	SandboxID    string
	Name         string
	RestartCount int32
	State        runtimeapi.ContainerState
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	ExitCode     int32
	Reason       string
	Message      string
	Image        string
	ImageRef     string
	LogPath      string
}

func (i *instance) running() bool { return i.State == runtimeapi.ContainerState_CONTAINER_RUNNING }
func (i *instance) exited() bool  { return i.State == runtimeapi.ContainerState_CONTAINER_EXITED }

// podRuntime is what the runtime holds of one pod: its sandboxes and
// container instances, newest first.
type podRuntime struct {
	Sandboxes []*sandbox
	Instances []*instance
}

// readySandbox returns the newest sandbox if it is ready.
func (p *podRuntime) readySandbox() *sandbox {
	if len(p.Sandboxes) > 0 && p.Sandboxes[0].Ready {
		return p.Sandboxes[0]
	}
	return nil
}

// latest returns the newest instance of the named container, or nil.
func (p *podRuntime) latest(name string) *instance {
	for _, i := range p.Instances {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// previous returns the instance before the newest one, or nil.
func (p *podRuntime) previous(name string) *instance {
	seen := false
	for _, i := range p.Instances {
		if i.Name != name {
			continue
		}
		if seen {
			return i
		}
		seen = true
	}
	return nil
}

// running lists the running instances.
func (p *podRuntime) running() []*instance {
	var out []*instance
	for _, i := range p.Instances {
		if i.running() {
			out = append(out, i)
		}
	}
	return out
}

// readRuntime lists the pod's sandboxes and containers. Exited containers
// never change, so their statuses come from cache when it has them.
func (w *Workers) readRuntime(ctx context.Context, uid types.UID) (*podRuntime, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sbs, err := w.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes of pod %s: %w", uid, err)
	}
	cs, err := w.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing containers of pod %s: %w", uid, err)
	}
	out := &podRuntime{}
	for _, s := range sbs {
		out.Sandboxes = append(out.Sandboxes, &sandbox{
			ID:        s.Id,
			Ready:     s.State == runtimeapi.PodSandboxState_SANDBOX_READY,
			Attempt:   s.GetMetadata().GetAttempt(),
			CreatedAt: time.Unix(0, s.CreatedAt),
		})
	}
	sort.SliceStable(out.Sandboxes, func(a, b int) bool {
		sa, sb := out.Sandboxes[a], out.Sandboxes[b]
		if sa.Attempt != sb.Attempt {
			return sa.Attempt > sb.Attempt
		}
		return sa.CreatedAt.After(sb.CreatedAt)
	})
	for _, c := range cs {
		inst, err := w.instanceStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		if inst != nil {
			out.Instances = append(out.Instances, inst)
		}
	}
	sort.SliceStable(out.Instances, func(a, b int) bool {
		ia, ib := out.Instances[a], out.Instances[b]
		if ia.RestartCount != ib.RestartCount {
			return ia.RestartCount > ib.RestartCount
		}
		return ia.CreatedAt.After(ib.CreatedAt)
	})
	return out, nil
}

// instanceStatus reads one container's status, from cache for an exited
// one. A container that vanished between the list and the status is
// skipped (nil, nil).
func (w *Workers) instanceStatus(ctx context.Context, c *runtimeapi.Container) (*instance, error) {
	w.mu.Lock()
	cached, ok := w.exited[c.Id]
	w.mu.Unlock()
	if ok {
		return cached, nil
	}
	resp, err := w.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("status of container %s: %w", c.Id, err)
	}
	s := resp.GetStatus()
	if s == nil {
		return nil, nil
	}
	name := c.GetLabels()[labelContainerName]
	if name == "" {
		name = c.GetMetadata().GetName()
	}
	restarts := int32(c.GetMetadata().GetAttempt())
	if v, err := strconv.ParseInt(c.GetAnnotations()[annoRestartCount], 10, 32); err == nil {
		restarts = int32(v)
	}
	inst := &instance{
		ID:           c.Id,
		SandboxID:    c.PodSandboxId,
		Name:         name,
		RestartCount: restarts,
		State:        s.State,
		CreatedAt:    time.Unix(0, s.CreatedAt),
		ExitCode:     s.ExitCode,
		Reason:       s.Reason,
		Message:      s.Message,
		Image:        s.GetImage().GetImage(),
		ImageRef:     s.ImageRef,
		LogPath:      s.LogPath,
	}
	if s.StartedAt > 0 {
		inst.StartedAt = time.Unix(0, s.StartedAt)
	}
	if s.FinishedAt > 0 {
		inst.FinishedAt = time.Unix(0, s.FinishedAt)
	}
	if inst.exited() {
		if inst.Reason == "" {
			inst.Reason = "Error"
			if inst.ExitCode == 0 {
				inst.Reason = "Completed"
			}
		}
		if inst.Message == "" {
			uid := types.UID(c.GetLabels()[labelPodUID])
			inst.Message = w.terminationMessage(w.termLogHostPath(uid, name, restarts), c.GetAnnotations(), inst)
		}
		w.mu.Lock()
		w.exited[c.Id] = inst
		w.mu.Unlock()
	}
	return inst, nil
}

// terminationMessage reads what the container wrote to its termination
// log (the host file behind terminationMessagePath), or with policy
// FallbackToLogsOnError the tail of its log when it failed and wrote
// nothing.
func (w *Workers) terminationMessage(hostPath string, annotations map[string]string, inst *instance) string {
	if annotations[annoTermMsgPath] != "" {
		if msg := readTail(hostPath, maxTermMessageBytes); msg != "" {
			return msg
		}
	}
	if corev1.TerminationMessagePolicy(annotations[annoTermMsgPolicy]) == corev1.TerminationMessageFallbackToLogsOnError &&
		inst.ExitCode != 0 && inst.LogPath != "" {
		return criLogTail(inst.LogPath, 80, 2048)
	}
	return ""
}
