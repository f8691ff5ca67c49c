package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"volplane/internal/hostops"
	"volplane/internal/logging"
	"volplane/internal/version"
)

// RuntimeName is what Version reports as the runtime's name.
const RuntimeName = "volplane"

var (
	_ criapi.RuntimeService      = (*Runtime)(nil)
	_ criapi.ImageManagerService = (*Runtime)(nil)
	_ streaming.Runtime          = (*Streamer)(nil)
)

// Config configures the built-in runtime.
type Config struct {
	// StateDir holds the runtime's state: bundles, runc's --root, exit
	// files, sandbox and container records (e.g. <root-dir>/runtime).
	StateDir string
	// ImagesDir is DIR/images, where the image rule looks for rootfs
	// directories.
	ImagesDir string
	// RuncPath is the runc binary; default "runc" found on PATH.
	RuncPath string
	// ConmonPath is the conmon binary; default "conmon" found on PATH.
	ConmonPath string
	// Host performs the mounts (image overlays); default the real host.
	Host hostops.Host
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("runtime state dir %q must be an absolute path", c.StateDir)
	}
	if c.ImagesDir == "" || !filepath.IsAbs(c.ImagesDir) {
		return fmt.Errorf("images dir %q must be an absolute path", c.ImagesDir)
	}
	var err error
	if c.RuncPath, err = lookBinary(c.RuncPath, "runc"); err != nil {
		return err
	}
	if c.ConmonPath, err = lookBinary(c.ConmonPath, "conmon"); err != nil {
		return err
	}
	if c.Host == nil {
		c.Host = hostops.New()
	}
	return nil
}

// lookBinary returns the absolute path of p (default name on PATH).
func lookBinary(p, name string) (string, error) {
	if p == "" {
		p = name
	}
	abs, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("%s (install the Debian package %s): %w", p, name, err)
	}
	return filepath.Abs(abs)
}

// Runtime is volplane's built-in container runtime: the CRI
// RuntimeService and ImageManagerService over runc and conmon. All its
// state is in files under StateDir; see the package documentation.
type Runtime struct {
	cfg Config
	// hostCaps are the capabilities containers may have.
	hostCaps []string

	mu         sync.RWMutex
	sandboxes  map[string]*sandbox
	containers map[string]*container
}

// New returns a runtime over cfg.StateDir, adopting every sandbox and
// container recorded there: running containers keep running under their
// conmon, and the exit codes of those that ended meanwhile are kept.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	caps, err := boundingCaps()
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, hostCaps: caps, sandboxes: map[string]*sandbox{}, containers: map[string]*container{}}
	for _, d := range []string{r.runcRoot(), r.exitDir(), r.sandboxDir(), r.containerDir(), r.attachDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// runc makes the mount holding a container's root private in the
	// container's namespace. Were the bundles in the same mount as the
	// volumes (the agent's root directory, made rshared), that would cut
	// HostToContainer and Bidirectional propagation: the state directory
	// is a private mount of its own.
	if err := cfg.Host.MakeMountPoint(ctx, cfg.StateDir, hostops.PropagationPrivate); err != nil {
		return nil, fmt.Errorf("runtime state dir: %w", err)
	}
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	logging.FromContext(ctx).Info("container runtime ready", "stateDir", cfg.StateDir,
		"sandboxes", len(r.sandboxes), "containers", len(r.containers))
	return r, nil
}

// Streamer returns the streaming.Runtime (exec, attach, port-forward by
// container or sandbox ID) the kubelet API serves.
func (r *Runtime) Streamer() *Streamer { return &Streamer{r: r} }

func (r *Runtime) runcRoot() string        { return filepath.Join(r.cfg.StateDir, "runc") }
func (r *Runtime) exitDir() string         { return filepath.Join(r.cfg.StateDir, "exits") }
func (r *Runtime) sandboxDir() string      { return filepath.Join(r.cfg.StateDir, "sandboxes") }
func (r *Runtime) containerDir() string    { return filepath.Join(r.cfg.StateDir, "containers") }
func (r *Runtime) attachDir() string       { return filepath.Join(r.cfg.StateDir, "attach") }
func (r *Runtime) bundle(id string) string { return filepath.Join(r.containerDir(), id) }

// newID returns a fresh 64-hex-digit ID, the shape of CRI IDs.
func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func nowNano() int64 { return time.Now().UnixNano() }

// Version implements RuntimeService.
func (r *Runtime) Version(ctx context.Context, apiVersion string) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       RuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: "v1",
	}, nil
}

// Status implements RuntimeService: the runtime is ready when runc and
// conmon are there; the network is the host's and always ready.
func (r *Runtime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	ready := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	for _, p := range []string{r.cfg.RuncPath, r.cfg.ConmonPath} {
		if _, err := os.Stat(p); err != nil {
			ready = &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Reason: "BinaryMissing", Message: err.Error()}
		}
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		ready,
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

// RuntimeConfig implements RuntimeService: cgroupfs is the cgroup driver.
func (r *Runtime) RuntimeConfig(ctx context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}}, nil
}

// UpdateRuntimeConfig implements RuntimeService; the pod CIDR it carries
// means nothing with host networking.
func (r *Runtime) UpdateRuntimeConfig(ctx context.Context, cfg *runtimeapi.RuntimeConfig) error {
	return nil
}

// Close implements RuntimeService and ImageManagerService. It releases
// nothing a container needs: containers keep running under conmon.
func (r *Runtime) Close(ctx context.Context) error { return nil }

// errNotFound is the error of an unknown sandbox or container ID: gRPC
// NotFound, which k8s.io/cri-api/pkg/errors.IsNotFound recognises.
func errNotFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}
