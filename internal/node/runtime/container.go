package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
	"volplane/internal/logging"
)

// CreateContainer implements RuntimeService: it writes the container's
// OCI bundle and has conmon run `runc create`, so a missing command, an
// unknown user or an impossible mount fails here (the kubelet reports
// CreateContainerError).
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.RLock()
	sb := r.sandboxes[sandboxID]
	var dup string
	for _, c := range r.containers {
		if c.SandboxID == sandboxID && c.Config.GetMetadata().GetName() == cfg.GetMetadata().GetName() &&
			c.Config.GetMetadata().GetAttempt() == cfg.GetMetadata().GetAttempt() {
			dup = c.ID
		}
	}
	r.mu.RUnlock()
	if sb == nil {
		return "", errNotFound("pod sandbox", sandboxID)
	}
	if !sb.Ready {
		return "", status.Errorf(codes.FailedPrecondition, "pod sandbox %s is not ready", sandboxID)
	}
	if dup != "" {
		return "", status.Errorf(codes.AlreadyExists, "container %s attempt %d is already in sandbox %s as %s",
			cfg.GetMetadata().GetName(), cfg.GetMetadata().GetAttempt(), sandboxID, dup)
	}
	if sandboxCfg == nil {
		sandboxCfg = sb.Config
	}

	img, err := r.resolveImage(cfg.GetImage().GetImage())
	if err != nil {
		return "", err
	}
	c := &container{
		ID:        newID(),
		SandboxID: sandboxID,
		Config:    cfg,
		Image:     img.Name,
		CreatedAt: nowNano(),
	}
	if cfg.GetLogPath() != "" && filepath.IsAbs(sandboxCfg.GetLogDirectory()) {
		c.LogPath = filepath.Join(sandboxCfg.GetLogDirectory(), cfg.GetLogPath())
	} else {
		c.LogPath = filepath.Join(r.bundle(c.ID), "container.log")
	}
	c.StopSignal = stopSignal(cfg.GetStopSignal(), img.Config)
	c.Cgroup = filepath.Join(cgroupParent(sandboxCfg, sandboxID), c.ID)
	c.resources.Store(cfg.GetLinux().GetResources())

	if err := r.create(ctx, c, img, sandboxCfg); err != nil {
		// Undo what got done, also when ctx ended half-way.
		cctx := context.WithoutCancel(ctx)
		_ = r.runc(cctx, "delete", "--force", c.ID)
		_ = os.Remove(filepath.Join(r.exitDir(), c.ID))
		if rerr := r.removeBundle(cctx, c.ID, c.Overlay); rerr != nil {
			logging.FromContext(ctx).Error("cannot clean up a container that failed to create", "container", c.ID, "err", rerr)
		}
		return "", err
	}
	r.mu.Lock()
	r.containers[c.ID] = c
	r.mu.Unlock()
	logging.FromContext(ctx).Debug("container created", "container", c.ID, "name", cfg.GetMetadata().GetName(), "sandbox", sandboxID)
	return c.ID, nil
}

// create writes c's bundle and record and runs conmon. On error the
// caller removes the bundle.
func (r *Runtime) create(ctx context.Context, c *container, img image, sandboxCfg *runtimeapi.PodSandboxConfig) error {
	b := r.bundle(c.ID)
	root := filepath.Join(b, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	passwdRoot := "/"
	if img.Rootfs != "" {
		// The image stays untouched: the container writes to an
		// overlay whose upper layer lives in the bundle.
		upper, work := filepath.Join(b, "upper"), filepath.Join(b, "work")
		for _, d := range []string{upper, work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		c.Overlay = true
		opts := []string{"lowerdir=" + img.Rootfs, "upperdir=" + upper, "workdir=" + work}
		if err := r.cfg.Host.Mount(ctx, "overlay", root, "overlay", opts); err != nil {
			return fmt.Errorf("image %q: %w", img.Name, err)
		}
		passwdRoot = img.Rootfs
	}
	sec := c.Config.GetLinux().GetSecurityContext()
	user, err := resolveUser(passwdRoot, sec, img.Config)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	devs, err := resolveDevices(c.Config.GetDevices())
	if err != nil {
		return err
	}
	var resolv string
	if _, err := os.Stat(r.resolvFile(c.SandboxID)); err == nil {
		resolv = r.resolvFile(c.SandboxID)
	}
	spec, err := buildSpec(specInput{
		Sandbox: sandboxCfg, Container: c.Config, Image: img, Root: root,
		CgroupsPath: c.Cgroup,
		User:        user, Devices: devs, HostCaps: r.hostCaps, ResolvConf: resolv,
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), js, 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
		return err
	}
	if err := r.saveContainer(c); err != nil {
		return err
	}
	return r.startConmon(ctx, c)
}

// cgroupParent is the sandbox's cgroup: the kubelet's cgroup_parent, or
// volplane/<sandbox> under each hierarchy's root.
func cgroupParent(cfg *runtimeapi.PodSandboxConfig, sandboxID string) string {
	if p := cfg.GetLinux().GetCgroupParent(); p != "" {
		return p
	}
	return filepath.Join("/volplane", sandboxID)
}

// stopSignal is the signal that stops a container: the config's, the
// image's, or SIGTERM; in runc's spelling.
func stopSignal(s runtimeapi.Signal, ic *imageConfig) string {
	if s != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(s.String(), "SIGNAL_")
	}
	if ic != nil && ic.StopSignal != "" {
		return strings.ToUpper(ic.StopSignal)
	}
	return "SIGTERM"
}

// get returns the container with id, or a NotFound error.
func (r *Runtime) get(id string) (*container, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.containers[id]
	if c == nil {
		return nil, errNotFound("container", id)
	}
	return c, nil
}

// StartContainer implements RuntimeService: `runc start`.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.StartedAt != 0 {
		return status.Errorf(codes.FailedPrecondition, "container %s was already started", id)
	}
	if e, ok := r.exitStatus(id); ok {
		return status.Errorf(codes.FailedPrecondition, "container %s ended (exit code %d) before it was started", id, e.Code)
	}
	// The process starts during runc start; take the time before, so
	// that a quick process never finishes before it started.
	started := nowNano()
	if err := r.runc(ctx, "start", id); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	c.StartedAt = started
	return r.saveContainer(c)
}

// StopContainer implements RuntimeService: the stop signal, then SIGKILL
// after timeout seconds. Stopping a container that is not running is not
// an error.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return r.stop(ctx, c, time.Duration(timeout)*time.Second)
}

// stop signals c and waits for conmon to record its exit. c.mu is held.
func (r *Runtime) stop(ctx context.Context, c *container, grace time.Duration) error {
	if _, ok := r.exitStatus(c.ID); ok {
		return nil
	}
	all := c.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_NODE
	kill := func(sig string) {
		args := []string{"kill"}
		if all {
			args = append(args, "--all")
		}
		// Fails when the process is already gone; the exit file says.
		_ = r.runc(ctx, append(args, c.ID, sig)...)
	}
	if grace > 0 && c.StartedAt != 0 {
		kill(c.StopSignal)
		wctx, cancel := context.WithTimeout(ctx, grace)
		_, err := r.waitExit(wctx, c.ID)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	kill("KILL")
	if _, err := r.waitExit(ctx, c.ID); err != nil {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	return nil
}

// RemoveContainer implements RuntimeService: it kills the container if it
// runs, deletes it from runc, unmounts its rootfs overlay and removes its
// bundle and exit file. The log stays (the kubelet removes logs). A
// missing container is not an error.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c, err := r.get(id)
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := r.stop(ctx, c, 0); err != nil {
		return err
	}
	if err := r.runc(ctx, "delete", "--force", id); err != nil && !runcGone(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := r.removeBundle(ctx, id, c.Overlay); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := os.Remove(filepath.Join(r.exitDir(), id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	r.mu.Lock()
	delete(r.containers, id)
	r.mu.Unlock()
	return nil
}

// runcGone reports whether a runc error says the container does not
// exist. runc says so only in text and with exit code 1.
func runcGone(err error) bool {
	var ee *hostops.ExecError
	return errors.As(err, &ee) && strings.Contains(ee.Stderr, "does not exist")
}

// removeBundle unmounts the rootfs overlay and removes the bundle. It
// refuses to remove a bundle under which anything is still mounted, so
// that a volume can never be deleted through it.
func (r *Runtime) removeBundle(ctx context.Context, id string, overlay bool) error {
	b := r.bundle(id)
	root := filepath.Join(b, "rootfs")
	if overlay {
		if err := r.cfg.Host.Unmount(ctx, root); err != nil {
			return err
		}
	}
	mps, err := r.cfg.Host.Mounts()
	if err != nil {
		return err
	}
	for _, m := range mps {
		if m.Path == b || strings.HasPrefix(m.Path, b+"/") {
			return fmt.Errorf("bundle %s: %s is still mounted", b, m.Path)
		}
	}
	return os.RemoveAll(b)
}
