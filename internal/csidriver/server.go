package csidriver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"

	"volplane/internal/logging"
)

// SocketPath returns the path of a unix endpoint: unix:///path,
// unix:/path or a plain absolute path.
func SocketPath(endpoint string) (string, error) {
	path := endpoint
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		path = strings.TrimPrefix(endpoint, "unix://")
	case strings.HasPrefix(endpoint, "unix:"):
		path = strings.TrimPrefix(endpoint, "unix:")
	case strings.Contains(endpoint, "://"):
		return "", fmt.Errorf("endpoint %q: only unix sockets are supported", endpoint)
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("endpoint %q: the socket path must be absolute", endpoint)
	}
	return path, nil
}

// Listen opens the unix socket of endpoint. A socket file left by a
// previous run is replaced; one that still answers is in use and is an
// error.
func Listen(endpoint string) (net.Listener, error) {
	path, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("endpoint %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("endpoint %s is in use by another process", path)
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

// NewServer returns a gRPC server with every service of the driver
// registered behind the logging interceptor.
func (d *Driver) NewServer(ctx context.Context) *grpc.Server {
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(logInterceptor(logging.FromContext(ctx), d.metrics)))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	csi.RegisterGroupControllerServer(srv, d)
	return srv
}

// Serve serves the driver on endpoint until ctx is done, then lets the
// calls in flight finish (up to five seconds) and removes the socket.
func (d *Driver) Serve(ctx context.Context, endpoint string) error {
	l, err := Listen(endpoint)
	if err != nil {
		return err
	}
	return d.ServeOn(ctx, l)
}

// ServeOn is Serve on a socket already opened with Listen, for callers
// that must know the socket exists before the driver serves on it.
func (d *Driver) ServeOn(ctx context.Context, l net.Listener) error {
	path := l.Addr().String()
	srv := d.NewServer(ctx)
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop.Done()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			srv.Stop()
		}
	}()
	logging.FromContext(ctx).Info("serving CSI", "endpoint", "unix://"+path)
	err := srv.Serve(l)
	cancel()
	<-done
	_ = os.Remove(path)
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}
