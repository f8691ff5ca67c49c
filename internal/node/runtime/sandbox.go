package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
)

// RunPodSandbox implements RuntimeService. A sandbox here is a record and
// the pod's log directory: pods use the host's network, so there is no
// network namespace to hold and no pause process (see the package doc).
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	if runtimeHandler != "" {
		return "", status.Errorf(codes.InvalidArgument, "runtime handler %q: only the default handler exists", runtimeHandler)
	}
	if cfg.GetMetadata() == nil {
		return "", status.Error(codes.InvalidArgument, "pod sandbox config has no metadata")
	}
	if d := cfg.GetLogDirectory(); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	s := &sandbox{ID: newID(), Config: cfg, CreatedAt: nowNano(), Ready: true}
	if dns := resolvConf(cfg.GetDnsConfig()); dns != nil {
		if err := os.WriteFile(r.resolvFile(s.ID), dns, 0o644); err != nil {
			return "", err
		}
	}
	if err := r.saveSandbox(s); err != nil {
		_ = os.Remove(r.resolvFile(s.ID))
		return "", err
	}
	r.mu.Lock()
	r.sandboxes[s.ID] = s
	r.mu.Unlock()
	logging.FromContext(ctx).Debug("pod sandbox created", "sandbox", s.ID,
		"pod", cfg.GetMetadata().GetNamespace()+"/"+cfg.GetMetadata().GetName())
	return s.ID, nil
}

// resolvFile is the sandbox's resolv.conf, mounted into its containers.
func (r *Runtime) resolvFile(id string) string {
	return filepath.Join(r.sandboxDir(), id+".resolv.conf")
}

// resolvConf renders the kubelet's DNS config as a resolv.conf, as CRI
// runtimes do; nil when the config says nothing (the container keeps its
// image's own file, the host's for the host image).
func resolvConf(dns *runtimeapi.DNSConfig) []byte {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		return nil
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		b.WriteString("search " + strings.Join(dns.GetSearches(), " ") + "\n")
	}
	for _, s := range dns.GetServers() {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(dns.GetOptions()) > 0 {
		b.WriteString("options " + strings.Join(dns.GetOptions(), " ") + "\n")
	}
	return []byte(b.String())
}

// containersOf returns the containers of a sandbox.
func (r *Runtime) containersOf(sandboxID string) []*container {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*container
	for _, c := range r.containers {
		if c.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

// StopPodSandbox implements RuntimeService: it kills the sandbox's
// containers that still run and marks it not ready. A missing sandbox is
// not an error.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	r.mu.RLock()
	s := r.sandboxes[id]
	r.mu.RUnlock()
	if s == nil {
		return nil
	}
	for _, c := range r.containersOf(id) {
		c.mu.Lock()
		err := r.stop(ctx, c, 0)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	wasReady := s.Ready
	s.Ready = false
	r.mu.Unlock()
	if wasReady {
		return r.saveSandbox(s)
	}
	return nil
}

// RemovePodSandbox implements RuntimeService: it removes the sandbox's
// containers, its cgroup and its record. A missing sandbox is not an
// error.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	r.mu.RLock()
	s := r.sandboxes[id]
	r.mu.RUnlock()
	if s == nil {
		return nil
	}
	for _, c := range r.containersOf(id) {
		if err := r.RemoveContainer(ctx, c.ID); err != nil {
			return err
		}
	}
	if s.Config.GetLinux().GetCgroupParent() == "" {
		removeCgroup(cgroupParent(s.Config, id))
	}
	if err := os.Remove(r.resolvFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(r.sandboxFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	r.mu.Lock()
	delete(r.sandboxes, id)
	r.mu.Unlock()
	return nil
}

// removeCgroup removes the (empty) cgroup directory rel under every
// cgroup v1 hierarchy and v2's root, best effort: runc removed the
// containers' own cgroups below it.
func removeCgroup(rel string) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		_ = os.Remove(filepath.Join(h, rel))
	}
}

// PodSandboxStatus implements RuntimeService. The sandbox has the node's
// network; the agent reports the node's address as the pod IP.
func (r *Runtime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.RLock()
	s := r.sandboxes[id]
	var st *runtimeapi.PodSandboxStatus
	if s != nil {
		st = sandboxStatus(s)
	}
	r.mu.RUnlock()
	if s == nil {
		return nil, errNotFound("pod sandbox", id)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if verbose {
		resp.Info = map[string]string{"record": r.sandboxFile(id)}
	}
	return resp, nil
}

// sandboxStatus builds the status of s; r.mu is held.
func sandboxStatus(s *sandbox) *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{
		Id:        s.ID,
		Metadata:  s.Config.GetMetadata(),
		State:     sandboxState(s),
		CreatedAt: s.CreatedAt,
		Network:   &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_NODE,
			Pid:     runtimeapi.NamespaceMode_CONTAINER,
			Ipc:     runtimeapi.NamespaceMode_CONTAINER,
		}}},
		Labels:      s.Config.GetLabels(),
		Annotations: s.Config.GetAnnotations(),
	}
}

func sandboxState(s *sandbox) runtimeapi.PodSandboxState {
	if s.Ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// ListPodSandbox implements RuntimeService, oldest first.
func (r *Runtime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range r.sandboxes {
		if filter.GetId() != "" && filter.GetId() != s.ID {
			continue
		}
		if filter.GetState() != nil && filter.GetState().GetState() != sandboxState(s) {
			continue
		}
		if !labelsMatch(s.Config.GetLabels(), filter.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id:          s.ID,
			Metadata:    s.Config.GetMetadata(),
			State:       sandboxState(s),
			CreatedAt:   s.CreatedAt,
			Labels:      s.Config.GetLabels(),
			Annotations: s.Config.GetAnnotations(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out, nil
}
