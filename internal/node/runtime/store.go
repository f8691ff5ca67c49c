package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
)

// sandbox is a pod sandbox: a record, no process (see the package doc).
type sandbox struct {
	ID        string
	Config    *runtimeapi.PodSandboxConfig
	CreatedAt int64
	Ready     bool
}

// sandboxRecord is a sandbox as written to sandboxes/<id>.json.
type sandboxRecord struct {
	ID        string          `json:"id"`
	Config    json.RawMessage `json:"config"`
	CreatedAt int64           `json:"createdAt"`
	Ready     bool            `json:"ready"`
}

// container is a container: its record, written to
// containers/<id>/meta.json, and a lock that orders the operations on it.
type container struct {
	mu sync.Mutex // held by start, stop and remove

	ID        string
	SandboxID string
	Config    *runtimeapi.ContainerConfig
	// Image is the image name as resolved.
	Image string
	// LogPath is the absolute path of the CRI log.
	LogPath string
	// Overlay says Root is an overlay mount of an image's rootfs that
	// RemoveContainer unmounts.
	Overlay bool
	// StopSignal is the signal StopContainer sends first.
	StopSignal string
	// Cgroup is the container's cgroup path under each hierarchy.
	Cgroup    string
	CreatedAt int64
	// StartedAt is set once runc start returned; 0 before.
	StartedAt int64
	// resources are the container's current resources: the config's
	// until UpdateContainerResources changes them.
	resources atomic.Pointer[runtimeapi.LinuxContainerResources]
}

// containerRecord is a container as written to meta.json.
type containerRecord struct {
	ID         string          `json:"id"`
	SandboxID  string          `json:"sandboxID"`
	Config     json.RawMessage `json:"config"`
	Image      string          `json:"image"`
	LogPath    string          `json:"logPath"`
	Overlay    bool            `json:"overlay,omitempty"`
	StopSignal string          `json:"stopSignal"`
	Cgroup     string          `json:"cgroup"`
	CreatedAt  int64           `json:"createdAt"`
	StartedAt  int64           `json:"startedAt,omitempty"`
	// Resources are set once UpdateContainerResources changed them.
	Resources json.RawMessage `json:"resources,omitempty"`
}

func (r *Runtime) sandboxFile(id string) string {
	return filepath.Join(r.sandboxDir(), id+".json")
}

func (r *Runtime) saveSandbox(s *sandbox) error {
	cfg, err := protojson.Marshal(s.Config)
	if err != nil {
		return err
	}
	b, err := json.Marshal(sandboxRecord{ID: s.ID, Config: cfg, CreatedAt: s.CreatedAt, Ready: s.Ready})
	if err != nil {
		return err
	}
	return writeRecord(r.sandboxFile(s.ID), b)
}

func (r *Runtime) saveContainer(c *container) error {
	cfg, err := protojson.Marshal(c.Config)
	if err != nil {
		return err
	}
	rec := containerRecord{
		ID: c.ID, SandboxID: c.SandboxID, Config: cfg, Image: c.Image, LogPath: c.LogPath,
		Overlay: c.Overlay, StopSignal: c.StopSignal, Cgroup: c.Cgroup, CreatedAt: c.CreatedAt, StartedAt: c.StartedAt,
	}
	if res := c.resources.Load(); res != nil && res != c.Config.GetLinux().GetResources() {
		if rec.Resources, err = protojson.Marshal(res); err != nil {
			return err
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeRecord(filepath.Join(r.bundle(c.ID), "meta.json"), b)
}

// load reads every sandbox and container record under StateDir; one it
// cannot parse is logged and left alone rather than stopping the node. A
// container whose record says "not started" but whose process runs (the
// agent died between runc start and the record) is marked started; one
// whose monitor is gone without an exit file gets exit code 255.
func (r *Runtime) load(ctx context.Context) error {
	log := logging.FromContext(ctx)
	entries, err := os.ReadDir(r.sandboxDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		b, err := os.ReadFile(r.sandboxFile(id))
		if err != nil {
			return err
		}
		var rec sandboxRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			log.Error("skipping an unreadable sandbox record", "sandbox", id, "err", err)
			continue
		}
		s := &sandbox{ID: rec.ID, CreatedAt: rec.CreatedAt, Ready: rec.Ready, Config: &runtimeapi.PodSandboxConfig{}}
		if err := protojson.Unmarshal(rec.Config, s.Config); err != nil {
			log.Error("skipping an unreadable sandbox record", "sandbox", id, "err", err)
			continue
		}
		r.sandboxes[s.ID] = s
	}

	entries, err = os.ReadDir(r.containerDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		id := e.Name()
		b, err := os.ReadFile(filepath.Join(r.bundle(id), "meta.json"))
		if errors.Is(err, os.ErrNotExist) {
			// Died before its record was written: nothing runs from
			// a bundle without one (conmon starts after the write).
			log.Warn("removing a container bundle without a record", "container", id)
			if err := r.removeBundle(ctx, id, true); err != nil {
				log.Error("cannot remove a container bundle without a record", "container", id, "err", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		var rec containerRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			log.Error("skipping an unreadable container record", "container", id, "err", err)
			continue
		}
		c := &container{
			ID: rec.ID, SandboxID: rec.SandboxID, Image: rec.Image, LogPath: rec.LogPath,
			Overlay: rec.Overlay, StopSignal: rec.StopSignal, Cgroup: rec.Cgroup, CreatedAt: rec.CreatedAt, StartedAt: rec.StartedAt,
			Config: &runtimeapi.ContainerConfig{},
		}
		if err := protojson.Unmarshal(rec.Config, c.Config); err != nil {
			log.Error("skipping an unreadable container record", "container", id, "err", err)
			continue
		}
		c.resources.Store(c.Config.GetLinux().GetResources())
		if rec.Resources != nil {
			res := &runtimeapi.LinuxContainerResources{}
			if err := protojson.Unmarshal(rec.Resources, res); err != nil {
				log.Error("skipping an unreadable container record", "container", id, "err", err)
				continue
			}
			c.resources.Store(res)
		}
		r.containers[id] = c
		if err := r.reconcile(ctx, c); err != nil {
			log.Warn("cannot tell a container's state", "container", id, "err", err)
		}
	}
	return nil
}

// reconcile checks an adopted container whose exit is not recorded
// against its monitor and runc.
func (r *Runtime) reconcile(ctx context.Context, c *container) error {
	if _, ok := r.exitStatus(c.ID); ok {
		return nil
	}
	if r.conmonAlive(c.ID) {
		if c.StartedAt != 0 {
			return nil
		}
		st, err := r.runcState(ctx, c.ID)
		if err != nil || st.Status != "running" {
			return err
		}
		c.StartedAt = st.Created.UnixNano()
		return r.saveContainer(c)
	}
	// conmon writes the exit file before it exits: missing now, it
	// stays missing.
	if _, ok := r.exitStatus(c.ID); ok {
		return nil
	}
	if st, err := r.runcState(ctx, c.ID); err == nil && (st.Status == "running" || st.Status == "created") {
		// Running without its monitor: no one would record its exit
		// or read its output. Kill it so that its state is known.
		_ = r.runc(ctx, "kill", c.ID, "KILL")
	}
	return r.writeExit(c.ID, 255)
}

// conmonAlive reports whether the conmon recorded in the bundle runs.
func (r *Runtime) conmonAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(r.bundle(id), "conmon.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "conmon" {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// writeExit records an exit code the way conmon does.
func (r *Runtime) writeExit(id string, code int) error {
	return writeRecord(filepath.Join(r.exitDir(), id), []byte(strconv.Itoa(code)))
}

// writeRecord replaces path with data through a rename, so that a reader
// (a runtime adopting after the agent was killed) sees the old record or
// the new one, never half of one. Unlike atomicfile.Write it does not
// sync: two syncs cost about 16 ms here, three times per pod, and what
// they protect against is a power loss, after which every container is
// dead anyway and an unreadable record is skipped at New.
func writeRecord(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
