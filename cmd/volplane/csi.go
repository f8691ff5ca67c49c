package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"volplane/internal/csidriver"
	"volplane/internal/csidriver/pool"
	"volplane/internal/logging"
)

// csiFlags are the flags of `volplane csi`.
type csiFlags struct {
	name       string
	endpoint   string
	regDir     string
	poolDir    string
	poolSize   string
	nodeID     string
	maxVolumes int64
	metrics    string
	// metricsRemote lets --metrics-listen take a non-loopback address.
	metricsRemote bool
	verbosity     int
}

func (f *csiFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "driver-name", csidriver.DriverName, "the driver's CSI name, for a second instance beside the built-in one")
	fs.StringVar(&f.endpoint, "endpoint", "unix:///run/volplane/csi.sock", "unix socket the driver serves CSI on")
	fs.StringVar(&f.regDir, "registration-dir", "", "also serve the kubelet plugin-registration API there (a node agent's plugins_registry), as node-driver-registrar does (off when empty)")
	fs.StringVar(&f.poolDir, "pool", "", "pool directory holding the volumes and the driver's records (required)")
	fs.StringVar(&f.poolSize, "pool-size", "", "size of the sparse btrfs image used when the pool's filesystem enforces no quota (default 10Gi for a new image; a larger size grows an existing one)")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's ID (default: the hostname)")
	fs.Int64Var(&f.maxVolumes, "max-volumes-per-node", csidriver.DefaultMaxVolumesPerNode, "volumes that may be published to this node at once")
	fs.StringVar(&f.metrics, "metrics-listen", "", "loopback HOST:PORT where the driver serves Prometheus /metrics (off when empty)")
	fs.BoolVar(&f.metricsRemote, "metrics-allow-remote", false, "let --metrics-listen take an address other hosts reach (the metrics are unauthenticated)")
	fs.IntVarP(&f.verbosity, "v", "v", 0, "log verbosity: 1 logs every CSI call")
}

// config turns the flags into the driver's Config.
func (f *csiFlags) config() (csidriver.Config, error) {
	if f.poolDir == "" {
		return csidriver.Config{}, errors.New("--pool is required")
	}
	var size int64
	if f.poolSize != "" {
		q, err := resource.ParseQuantity(f.poolSize)
		if err != nil {
			return csidriver.Config{}, fmt.Errorf("--pool-size: %w", err)
		}
		size = q.Value()
	}
	if f.metrics != "" {
		if err := checkMetricsAddr(f.metrics, f.metricsRemote); err != nil {
			return csidriver.Config{}, err
		}
	}
	cfg := csidriver.Config{
		Name:              f.name,
		NodeID:            f.nodeID,
		MaxVolumesPerNode: f.maxVolumes,
		Pool:              pool.Config{Dir: f.poolDir, ImageSize: size},
	}
	return cfg, cfg.Validate()
}

// newCSICommand runs the built-in CSI driver alone.
func newCSICommand() *cobra.Command {
	var f csiFlags
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "Run the built-in CSI driver local.csi.volplane.io on a unix socket",
		Long: `Run the built-in CSI driver local.csi.volplane.io: directory volumes with an
enforced capacity and loop-device block volumes, from a pool directory.

On btrfs, directory volumes are subvolumes limited by qgroups; on XFS/ext4
with project quotas, project-quota directories; anywhere else the pool
becomes a sparse btrfs image of --pool-size mounted under the pool; a
clean stop unmounts it unless a volume is still staged.

With --registration-dir (a node agent's <root>/plugins_registry) it also
registers itself with that node agent, as node-driver-registrar would:
the registration socket <dir>/<driver>-reg.sock answers the kubelet
plugin-registration API with --endpoint's path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			if f.regDir != "" && !filepath.IsAbs(f.regDir) {
				return fmt.Errorf("--registration-dir %q must be an absolute path", f.regDir)
			}
			ctx, stop, _ := signalContext(cmd.Context(), f.verbosity)
			defer stop()
			r := driverRun{cfg: cfg, endpoint: f.endpoint, registrationDir: f.regDir, metrics: f.metrics}
			return r.serve(ctx, func() {})
		},
	}
	f.add(cmd.Flags())
	return cmd
}

// checkMetricsAddr accepts a HOST:PORT for /metrics: a loopback host, as
// the controller manager requires, or any host when remote is set.
func checkMetricsAddr(addr string, remote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen %q: %w", addr, err)
	}
	if remote {
		return nil
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--metrics-listen %q is not a loopback address (use --metrics-allow-remote to serve metrics to other hosts)", addr)
	}
	return nil
}

// serveMetrics serves handler at /metrics on addr until ctx is done.
func serveMetrics(ctx context.Context, addr string, handler http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logging.FromContext(ctx).Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}
