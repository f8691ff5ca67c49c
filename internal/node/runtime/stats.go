package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
)

// cgroupRoot is where the cgroup v1 hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// readUint reads a cgroup file holding one number.
func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// memoryStat reads the named fields of a cgroup v1 memory.stat.
func memoryStat(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// stats reads a running container's CPU and memory from its cgroup v1
// files, as cAdvisor does: the working set is the usage less inactive
// file pages.
func (r *Runtime) stats(c *container) *runtimeapi.ContainerStats {
	now := nowNano()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id:          c.ID,
			Metadata:    c.Config.GetMetadata(),
			Labels:      c.Config.GetLabels(),
			Annotations: c.Config.GetAnnotations(),
		},
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now},
	}
	if v, ok := readUint(filepath.Join(cgroupRoot, "cpuacct", c.Cgroup, "cpuacct.usage")); ok {
		st.Cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: v}
	}
	mem := filepath.Join(cgroupRoot, "memory", c.Cgroup)
	if usage, ok := readUint(filepath.Join(mem, "memory.usage_in_bytes")); ok {
		ms := memoryStat(filepath.Join(mem, "memory.stat"))
		ws := usage
		if inactive := ms["total_inactive_file"]; inactive < ws {
			ws -= inactive
		} else {
			ws = 0
		}
		st.Memory.UsageBytes = &runtimeapi.UInt64Value{Value: usage}
		st.Memory.WorkingSetBytes = &runtimeapi.UInt64Value{Value: ws}
		st.Memory.RssBytes = &runtimeapi.UInt64Value{Value: ms["total_rss"]}
		st.Memory.PageFaults = &runtimeapi.UInt64Value{Value: ms["total_pgfault"]}
		st.Memory.MajorPageFaults = &runtimeapi.UInt64Value{Value: ms["total_pgmajfault"]}
	}
	return st
}

// ContainerStats implements RuntimeService: CPU and memory from the
// container's cgroup (zero once it ended); no filesystem figures.
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	c, err := r.get(id)
	if err != nil {
		return nil, err
	}
	return r.stats(c), nil
}

// ListContainerStats implements RuntimeService for running containers.
func (r *Runtime) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	cs, err := r.ListContainers(ctx, &runtimeapi.ContainerFilter{
		Id:            filter.GetId(),
		PodSandboxId:  filter.GetPodSandboxId(),
		LabelSelector: filter.GetLabelSelector(),
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.ContainerStats, 0, len(cs))
	for _, c := range cs {
		if cc, err := r.get(c.Id); err == nil {
			out = append(out, r.stats(cc))
		}
	}
	return out, nil
}

// UpdateContainerResources implements RuntimeService (in-place resize):
// `runc update` with the new memory and CPU settings, which are recorded
// so that ContainerStatus reports them.
func (r *Runtime) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.ContainerResources) error {
	c, err := r.running(id)
	if err != nil {
		return err
	}
	if res.GetLinux() == nil {
		return nil
	}
	lr := resources(res.GetLinux(), false)
	lr.Devices = nil // unchanged
	js, err := json.Marshal(lr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.CommandContext(ctx, r.cfg.RuncPath, "--root", r.runcRoot(), "update", "--resources", "-", id)
	cmd.Stdin = bytes.NewReader(js)
	if out, err := cmd.CombinedOutput(); err != nil {
		return &hostops.ExecError{Command: cmd.Args, ExitCode: exitCodeOf(err), Stderr: runcMessage(string(out)), Err: err}
	}
	c.resources.Store(res.GetLinux())
	return r.saveContainer(c)
}
