package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"

	"volplane/internal/component"
	"volplane/internal/controller/csicontroller"
	"volplane/internal/csi/client"
	"volplane/internal/csi/registrar"
	"volplane/internal/csidriver"
	"volplane/internal/logging"
)

// driverRun is one run of the built-in CSI driver: `volplane csi`, or a
// component of `volplane up`.
type driverRun struct {
	cfg      csidriver.Config
	endpoint string
	// registrationDir, when set, is where the driver's registration
	// socket goes (a node agent's plugins_registry).
	registrationDir string
	metrics         string
	// opened holds the driver once serve has opened its pool, for the
	// components that start after it (up's node agent puts its
	// size-limited emptyDirs on the pool). Nil: nobody asks.
	opened *atomic.Pointer[csidriver.Driver]
}

// emptyDirDir is where the node agent may make quota-limited emptyDirs:
// a directory in the pool when the pool is btrfs, "" otherwise (or when
// the driver is not open).
func (r driverRun) emptyDirDir() string {
	if r.opened == nil {
		return ""
	}
	d := r.opened.Load()
	if d == nil || !d.Pool().Btrfs() {
		return ""
	}
	return filepath.Join(d.Pool().DataDir(), "emptydir")
}

// serve opens the pool, the driver's socket and the registration socket,
// calls ready, and serves both until ctx is done. Then the pool is
// released: an image pool is unmounted when no volume is staged.
func (r driverRun) serve(ctx context.Context, ready func()) error {
	if err := r.checkSockets(); err != nil {
		return err
	}
	d, err := csidriver.New(ctx, r.cfg)
	if err != nil {
		return err
	}
	if r.opened != nil {
		r.opened.Store(d)
	}
	l, err := csidriver.Listen(r.endpoint)
	if err != nil {
		return err
	}
	var reg *registrar.Registrar
	if r.registrationDir != "" {
		reg, err = registrar.Listen(registrar.Config{Driver: r.cfg.Name, Endpoint: r.endpoint, Dir: r.registrationDir})
		if err != nil {
			l.Close()
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.metrics != "" {
		if err := serveMetrics(ctx, r.metrics, d.MetricsHandler()); err != nil {
			l.Close()
			if reg != nil {
				reg.Close()
			}
			return err
		}
	}
	ready()
	errs := make(chan error, 2)
	servers := 1
	go func() { errs <- d.ServeOn(ctx, l); cancel() }()
	if reg != nil {
		servers++
		go func() { errs <- reg.Serve(ctx); cancel() }()
	}
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if err := d.Release(context.WithoutCancel(ctx)); err != nil {
		logging.FromContext(ctx).Warn("the pool stays mounted", "err", err)
	}
	return first
}

// maxSocketPath is the longest path a unix socket may have (sun_path
// less its terminating NUL).
const maxSocketPath = 107

// builtinDriver is the built-in driver as `volplane up` runs it under
// dataDir: pool DIR/pool, socket and registration where a kubelet's
// would be under the agent's root dir DIR/kubelet.
func builtinDriver(dataDir, nodeName string, poolSize int64) (driverRun, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return driverRun{}, fmt.Errorf("--data-dir: %w", err)
	}
	root := filepath.Join(dataDir, "kubelet")
	sock := filepath.Join(root, "plugins", csidriver.DriverName, "csi.sock")
	r := driverRun{
		opened:          &atomic.Pointer[csidriver.Driver]{},
		cfg:             csidriver.Config{NodeID: nodeName},
		endpoint:        "unix://" + sock,
		registrationDir: filepath.Join(root, "plugins_registry"),
	}
	r.cfg.Pool.Dir, r.cfg.Pool.ImageSize = filepath.Join(dataDir, "pool"), poolSize
	return r, r.cfg.Validate()
}

// checkSockets refuses socket paths longer than a unix socket's, naming
// the path, before anything binds them (the kernel only says "invalid
// argument").
func (r driverRun) checkSockets() error {
	paths := []string{r.endpoint}
	if r.registrationDir != "" {
		reg := registrar.Config{Driver: r.cfg.Name, Dir: r.registrationDir}
		paths = append(paths, reg.SocketPath())
	}
	for _, p := range paths {
		p = strings.TrimPrefix(p, "unix://")
		if len(p) > maxSocketPath {
			return fmt.Errorf("the socket path %s is longer than the %d bytes a unix socket path may have (use a shorter directory)", p, maxSocketPath)
		}
	}
	return nil
}

// builtinController is the controller side of the built-in driver, run
// in volplane's controller manager. Its volumes live on one node, so the
// provisioner asks for the selected node's segment only.
func builtinController(r driverRun) csicontroller.Config {
	return csicontroller.Config{Name: csidriver.DriverName, Endpoint: r.endpoint, StrictTopology: true}
}

// driverComponent runs the built-in driver as a component.
func driverComponent(r driverRun) component.Component {
	return component.Component{Name: "CSI driver", Run: r.serve}
}

// csiDriverName is what a CSI driver's name may be: at most 63
// characters, alphanumerics with '-', '_' and '.' inside.
var csiDriverName = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?$`)

// csiControllerFlag is --csi-controller NAME=unix:///path, repeatable:
// the CSI drivers whose controller side runs in process.
type csiControllerFlag struct {
	drivers []csicontroller.Config
}

func (f *csiControllerFlag) String() string {
	var s []string
	for _, d := range f.drivers {
		s = append(s, d.Name+"="+d.Endpoint)
	}
	return strings.Join(s, ",")
}

func (f *csiControllerFlag) Type() string { return "NAME=unix:///path" }

// Set adds one driver; pflag quotes the error with the flag's name.
func (f *csiControllerFlag) Set(v string) error {
	name, endpoint, ok := strings.Cut(v, "=")
	if !ok || name == "" || endpoint == "" {
		return errors.New("want NAME=unix:///path, the CSI driver's name and its socket")
	}
	if !csiDriverName.MatchString(name) {
		return fmt.Errorf("%q is not a CSI driver name (at most 63 characters: letters, digits, '-', '_', '.', beginning and ending with a letter or digit)", name)
	}
	if _, err := client.SocketPath(endpoint); err != nil {
		return err
	}
	for _, d := range f.drivers {
		if d.Name == name {
			return fmt.Errorf("driver %s is named twice", name)
		}
	}
	f.drivers = append(f.drivers, csicontroller.Config{Name: name, Endpoint: endpoint})
	return nil
}
