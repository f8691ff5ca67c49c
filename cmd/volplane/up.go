package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"volplane/internal/bootstrap"
	"volplane/internal/controlplane"
)

func newUpCommand() *cobra.Command {
	var (
		common commonFlags
		ctrl   controllerFlags
		cp     = controlplane.Config{}
		node   string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: etcd, the Kubernetes API and its controllers, volplane's storage controllers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, log := common.setup(cmd)
			defer stop()
			if node == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("--node-name: %w", err)
				}
				node = h
			}
			prepare := func(ctx context.Context, plane *controlplane.ControlPlane) error {
				return bootstrap.EnsureDefaultClass(ctx, plane.AdminClient())
			}
			return serve(ctx, cmd, log, cp, ctrl, filepath.Join(cp.DataDir, "up"), prepare, "node", node)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cp.DataDir, "data-dir", defaultDataDir(), "directory that holds everything: etcd, pki, kubelet, pool, images, logs, kubeconfig")
	fs.StringVar(&cp.Listen, "listen", "127.0.0.1:6443", "HOST:PORT the Kubernetes API listens on")
	fs.StringVar(&node, "node-name", "", "this machine's node name (default: hostname)")
	common.add(fs)
	ctrl.add(fs)
	return cmd
}
