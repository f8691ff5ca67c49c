package registrar

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	regapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"volplane/internal/logging"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Driver: "d.example.com", Endpoint: "unix:///run/d/csi.sock", Dir: "/reg"}, ""},
		{"plain path endpoint", Config{Driver: "d", Endpoint: "/run/d/csi.sock", Dir: "/reg"}, ""},
		{"no driver", Config{Endpoint: "/run/d/csi.sock", Dir: "/reg"}, "driver name is required"},
		{"driver with a slash", Config{Driver: "a/b", Endpoint: "/run/d/csi.sock", Dir: "/reg"}, "cannot name a socket file"},
		{"tcp endpoint", Config{Driver: "d", Endpoint: "tcp://127.0.0.1:1", Dir: "/reg"}, "only unix sockets"},
		{"relative endpoint", Config{Driver: "d", Endpoint: "csi.sock", Dir: "/reg"}, "must be absolute"},
		{"relative dir", Config{Driver: "d", Endpoint: "/csi.sock", Dir: "reg"}, "must be an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(tc.cfg.Versions, DefaultVersions) {
					t.Errorf("versions %v, want the default %v", tc.cfg.Versions, DefaultVersions)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// syncBuffer is a log sink the server's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs a registrar for cfg and returns a client of its socket, the
// log and a stop function that waits for Serve's result.
func serve(t *testing.T, cfg Config) (regapi.RegistrationClient, *syncBuffer, func() error) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(logging.NewContext(context.Background(),
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	r, err := Listen(cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx) }()
	conn, err := grpc.NewClient("unix://"+cfg.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		stopped = true
		cancel()
		return <-served
	}
	t.Cleanup(func() {
		conn.Close()
		if !stopped {
			_ = stop()
		}
	})
	return regapi.NewRegistrationClient(conn), logs, stop
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Driver: "local.csi.volplane.io", Endpoint: "unix:///var/lib/kubelet/plugins/local.csi.volplane.io/csi.sock",
		Dir: filepath.Join(dir, "plugins_registry")}
	cli, logs, stop := serve(t, cfg)
	sock := filepath.Join(dir, "plugins_registry", "local.csi.volplane.io-reg.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("registration socket %s: %v %v", sock, fi, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	info, err := cli.GetInfo(ctx, &regapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetType() != "CSIPlugin" || info.GetName() != "local.csi.volplane.io" ||
		info.GetEndpoint() != "/var/lib/kubelet/plugins/local.csi.volplane.io/csi.sock" ||
		!slices.Equal(info.GetSupportedVersions(), []string{"1.0.0"}) {
		t.Errorf("GetInfo = %v", info)
	}

	if _, err := cli.NotifyRegistrationStatus(ctx, &regapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NotifyRegistrationStatus(ctx, &regapi.RegistrationStatus{Error: "no NodeGetInfo: driver gone"}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=INFO msg=\"driver registered with the node agent\" driver=local.csi.volplane.io") {
		t.Errorf("no registration logged:\n%s", out)
	}
	if !strings.Contains(out, `level=ERROR msg="the node agent refused to register the driver" driver=local.csi.volplane.io reason="no NodeGetInfo: driver gone"`) {
		t.Errorf("refusal not logged as an error with its reason:\n%s", out)
	}

	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after stop: %v", err)
	}
}

func TestListenSocketFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string
	}{
		{"stale socket is replaced", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"live socket is refused", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "in use by another process"},
		{"regular file is refused", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Driver: "d", Endpoint: "/run/d.sock", Dir: t.TempDir()}
			tc.prepare(t, cfg.SocketPath())
			r, err := Listen(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(cfg.SocketPath()); !os.IsNotExist(err) {
				t.Errorf("Close left the socket: %v", err)
			}
		})
	}
}
