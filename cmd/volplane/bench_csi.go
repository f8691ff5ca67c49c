package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"volplane/internal/csidriver"
	"volplane/internal/csidriver/csibench"
	"volplane/internal/csidriver/pool"
	"volplane/internal/logging"
)

func newBenchCSICommand() *cobra.Command {
	var (
		endpoints          []string
		builtin            bool
		poolDir, poolSize  string
		dirs, blocks       int
		dirSize, blockSize string
		workDir            string
	)
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "CSI driver latency: create+stage+publish and teardown",
		Long: `Bring 200 directory (Filesystem) volumes and 50 raw block volumes to a pod
one by one (CreateVolume, ControllerPublish, NodeStage, NodePublish), print
the p50/p99 latency of that, then take them all down (NodeUnpublish,
NodeUnstage, ControllerUnpublish, DeleteVolume) and print the time.

Without --endpoint the built-in driver is started on a temporary pool. With
--endpoint the bench drives a CSI driver already listening there; repeat it,
or add --builtin, to measure several drivers in one run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, _ := signalContext(cmd.Context(), 0)
			defer stop()
			dirBytes, err := resource.ParseQuantity(dirSize)
			if err != nil {
				return fmt.Errorf("--dir-size: %w", err)
			}
			blockBytes, err := resource.ParseQuantity(blockSize)
			if err != nil {
				return fmt.Errorf("--block-size: %w", err)
			}
			base := csibench.Config{DirVolumes: dirs, BlockVolumes: blocks,
				DirBytes: dirBytes.Value(), BlockBytes: blockBytes.Value()}
			tmp, err := os.MkdirTemp(workDir, "volplane-bench-csi-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			out := cmd.OutOrStdout()
			if len(endpoints) == 0 || builtin {
				res, err := benchBuiltin(ctx, base, tmp, poolDir, poolSize)
				if err != nil {
					return fmt.Errorf("built-in driver: %w", err)
				}
				res.Print(out, "volplane built-in driver")
			}
			for i, ep := range endpoints {
				cfg := base
				cfg.Endpoint = ep
				cfg.WorkDir = filepath.Join(tmp, fmt.Sprintf("endpoint-%d", i))
				if err := os.Mkdir(cfg.WorkDir, 0o750); err != nil {
					return err
				}
				res, err := csibench.Run(ctx, cfg)
				if err != nil {
					return fmt.Errorf("%s: %w", ep, err)
				}
				res.Print(out, ep)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&endpoints, "endpoint", nil, "unix:///path of a CSI driver to measure instead of the built-in one (repeatable)")
	fs.BoolVar(&builtin, "builtin", false, "also measure the built-in driver when --endpoint is given")
	fs.StringVar(&poolDir, "pool", "", "pool directory for the built-in driver (default: a temporary directory)")
	fs.StringVar(&poolSize, "pool-size", "10Gi", "image size when the built-in driver's pool needs a btrfs image")
	fs.IntVar(&dirs, "dir-volumes", 200, "directory (Filesystem) volumes to bring up")
	fs.IntVar(&blocks, "block-volumes", 50, "raw block volumes to bring up")
	fs.StringVar(&dirSize, "dir-size", "16Mi", "size of each directory volume")
	fs.StringVar(&blockSize, "block-size", "16Mi", "size of each block volume")
	fs.StringVar(&workDir, "work-dir", "", "where staging and target paths are made (default: the system's temporary directory)")
	return cmd
}

// benchBuiltin starts the built-in driver on its own pool and socket,
// measures it, and stops it, unmounting a pool image it had to make.
func benchBuiltin(ctx context.Context, base csibench.Config, tmp, poolDir, poolSize string) (*csibench.Result, error) {
	size, err := resource.ParseQuantity(poolSize)
	if err != nil {
		return nil, fmt.Errorf("--pool-size: %w", err)
	}
	if poolDir == "" {
		poolDir = filepath.Join(tmp, "pool")
	}
	// The driver logs only warnings here: the figures are the output.
	ctx = logging.NewContext(ctx, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	d, err := csidriver.New(ctx, csidriver.Config{
		NodeID:            "bench",
		MaxVolumesPerNode: int64(base.DirVolumes + base.BlockVolumes + 1),
		Pool:              pool.Config{Dir: poolDir, ImageSize: size.Value()},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := d.Pool().Unmount(context.WithoutCancel(ctx)); err != nil {
			logging.FromContext(ctx).Error("unmount bench pool", "err", err)
		}
	}()
	srvCtx, stopSrv := context.WithCancel(ctx)
	endpoint := "unix://" + filepath.Join(tmp, "builtin.sock")
	l, err := csidriver.Listen(endpoint)
	if err != nil {
		stopSrv()
		return nil, err
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeOn(srvCtx, l) }()
	defer func() {
		stopSrv()
		<-served
	}()
	cfg := base
	cfg.Endpoint = endpoint
	cfg.WorkDir = filepath.Join(tmp, "builtin")
	if err := os.Mkdir(cfg.WorkDir, 0o750); err != nil {
		return nil, err
	}
	cfg.MetadataSize = d.Store().DiskUsage
	return csibench.Run(ctx, cfg)
}
