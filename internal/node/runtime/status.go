package runtime

import (
	"context"
	"os"
	"path/filepath"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Reasons of an exited container, as CRI runtimes give them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// observed is a container's state as its files show it.
type observed struct {
	State      runtimeapi.ContainerState
	ExitCode   int32
	FinishedAt int64
	Reason     string
}

// observe derives c's state: exited once conmon wrote its exit file,
// running once started, created before. It reads one file.
func (r *Runtime) observe(c *container) observed {
	if e, ok := r.exitStatus(c.ID); ok {
		o := observed{State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: e.Code, FinishedAt: e.At, Reason: ReasonError}
		switch {
		case r.oomKilled(c.ID):
			o.Reason = ReasonOOMKilled
		case e.Code == 0:
			o.Reason = ReasonCompleted
		}
		return o
	}
	if c.StartedAt != 0 {
		return observed{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	}
	return observed{State: runtimeapi.ContainerState_CONTAINER_CREATED}
}

// oomKilled reports whether conmon saw the container's cgroup run out of
// memory: it leaves an "oom" file in the bundle.
func (r *Runtime) oomKilled(id string) bool {
	_, err := os.Stat(filepath.Join(r.bundle(id), "oom"))
	return err == nil
}

// ContainerStatus implements RuntimeService.
func (r *Runtime) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := r.get(id)
	if err != nil {
		return nil, err
	}
	o := r.observe(c)
	cfg := c.Config
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    cfg.GetMetadata(),
		State:       o.State,
		CreatedAt:   c.CreatedAt,
		StartedAt:   c.StartedAt,
		FinishedAt:  o.FinishedAt,
		ExitCode:    o.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: c.Image},
		ImageRef:    c.Image,
		ImageId:     c.Image,
		Reason:      o.Reason,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      cfg.GetMounts(),
		LogPath:     c.LogPath,
		Resources:   &runtimeapi.ContainerResources{Linux: c.resources.Load()},
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if verbose {
		resp.Info = map[string]string{"bundle": r.bundle(c.ID)}
	}
	return resp, nil
}

// ListContainers implements RuntimeService, oldest first.
func (r *Runtime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.RLock()
	cs := make([]*container, 0, len(r.containers))
	for _, c := range r.containers {
		cs = append(cs, c)
	}
	r.mu.RUnlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].CreatedAt < cs[j].CreatedAt })
	var out []*runtimeapi.Container
	for _, c := range cs {
		if filter.GetId() != "" && filter.GetId() != c.ID {
			continue
		}
		if filter.GetPodSandboxId() != "" && filter.GetPodSandboxId() != c.SandboxID {
			continue
		}
		if !labelsMatch(c.Config.GetLabels(), filter.GetLabelSelector()) {
			continue
		}
		o := r.observe(c)
		if filter.GetState() != nil && filter.GetState().GetState() != o.State {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id:           c.ID,
			PodSandboxId: c.SandboxID,
			Metadata:     c.Config.GetMetadata(),
			Image:        &runtimeapi.ImageSpec{Image: c.Image},
			ImageRef:     c.Image,
			ImageId:      c.Image,
			State:        o.State,
			CreatedAt:    c.CreatedAt,
			Labels:       c.Config.GetLabels(),
			Annotations:  c.Config.GetAnnotations(),
		})
	}
	return out, nil
}

// labelsMatch reports whether labels hold every pair of selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
