package registrar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc"
	regapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"volplane/internal/csi/client"
	"volplane/internal/logging"
)

// DefaultVersions are the CSI versions a driver is registered with.
var DefaultVersions = []string{"1.0.0"}

// Config names the driver to register and where.
type Config struct {
	// Driver is the CSI driver's name, as GetPluginInfo reports it.
	Driver string
	// Endpoint is the driver's socket as the node agent reaches it:
	// unix:///path, unix:/path or /path.
	Endpoint string
	// Dir is the registration directory the node agent watches
	// (<root>/plugins_registry).
	Dir string
	// Versions are the CSI versions GetInfo reports; default
	// DefaultVersions.
	Versions []string
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Driver == "" {
		return errors.New("registrar: driver name is required")
	}
	if len(c.Driver) > 63 || c.Driver != filepath.Base(c.Driver) {
		return fmt.Errorf("registrar: driver name %q cannot name a socket file", c.Driver)
	}
	if _, err := client.SocketPath(c.Endpoint); err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("registrar: registration directory %q must be an absolute path", c.Dir)
	}
	if len(c.Versions) == 0 {
		c.Versions = slices.Clone(DefaultVersions)
	}
	return nil
}

// SocketPath is the registration socket: <Dir>/<Driver>-reg.sock.
func (c *Config) SocketPath() string {
	return filepath.Join(c.Dir, c.Driver+"-reg.sock")
}

// Registrar serves the registration API of one driver.
type Registrar struct {
	regapi.UnimplementedRegistrationServer

	cfg      Config
	endpoint string
	l        net.Listener
}

var _ regapi.RegistrationServer = (*Registrar)(nil)

// Listen validates cfg and opens the registration socket. The agent may
// find it from now on; its calls wait until Serve runs.
func Listen(cfg Config) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	endpoint, _ := client.SocketPath(cfg.Endpoint)
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	l, err := listenUnix(cfg.SocketPath())
	if err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	return &Registrar{cfg: cfg, endpoint: endpoint, l: l}, nil
}

// Serve answers the agent until ctx is done, then removes the socket.
func (r *Registrar) Serve(ctx context.Context) error {
	log := logging.FromContext(ctx).With("driver", r.cfg.Driver)
	ctx = logging.NewContext(ctx, log)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(c context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(logging.NewContext(c, log), req)
	}))
	regapi.RegisterRegistrationServer(srv, r)
	served := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-served:
		}
		srv.Stop()
	}()
	log.Info("serving plugin registration", "socket", r.cfg.SocketPath(), "endpoint", r.endpoint)
	err := srv.Serve(r.l)
	close(served)
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	if rerr := r.Close(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Close removes the socket of a registrar that is not served (Serve
// removes it itself).
func (r *Registrar) Close() error {
	_ = r.l.Close()
	if err := os.Remove(r.cfg.SocketPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registrar: %w", err)
	}
	return nil
}

// GetInfo tells the agent which driver this is and where it serves.
func (r *Registrar) GetInfo(ctx context.Context, _ *regapi.InfoRequest) (*regapi.PluginInfo, error) {
	logging.FromContext(ctx).Info("node agent asked for the driver's registration info")
	return &regapi.PluginInfo{
		Type:              regapi.CSIPlugin,
		Name:              r.cfg.Driver,
		Endpoint:          r.endpoint,
		SupportedVersions: slices.Clone(r.cfg.Versions),
	}, nil
}

// NotifyRegistrationStatus logs what the agent made of the driver.
func (r *Registrar) NotifyRegistrationStatus(ctx context.Context, s *regapi.RegistrationStatus) (*regapi.RegistrationStatusResponse, error) {
	log := logging.FromContext(ctx)
	if s.GetPluginRegistered() {
		log.Info("driver registered with the node agent")
	} else {
		log.Error("the node agent refused to register the driver", "reason", s.GetError())
	}
	return &regapi.RegistrationStatusResponse{}, nil
}

// listenUnix opens a unix socket at path, replacing a stale socket file
// and refusing one that still answers or a file that is not a socket.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
