package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	endpoint   string
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
	fs.StringVar(&f.endpoint, "endpoint", "unix:///run/volplane/csi.sock", "unix socket the driver serves CSI on")
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
becomes a sparse btrfs image of --pool-size mounted under the pool.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			ctx, stop, _ := signalContext(cmd.Context(), f.verbosity)
			defer stop()
			d, err := csidriver.New(ctx, cfg)
			if err != nil {
				return err
			}
			if f.metrics != "" {
				if err := serveMetrics(ctx, f.metrics, d.MetricsHandler()); err != nil {
					return err
				}
			}
			return d.Serve(ctx, f.endpoint)
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
