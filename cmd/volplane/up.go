package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"volplane/internal/bootstrap"
	"volplane/internal/controller"
	"volplane/internal/controlplane"
	"volplane/internal/node/agent"
)

func newUpCommand() *cobra.Command {
	var (
		common commonFlags
		ctrl   controllerFlags
		cp     = controlplane.Config{}
		node   nodeFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: etcd, the Kubernetes API, the scheduler, volplane's storage controllers and a node agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, log := common.setup(cmd)
			defer stop()
			if node.name == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("--node-name: %w", err)
				}
				node.name = h
			}
			var plane *controlplane.ControlPlane
			prepare := func(ctx context.Context, plane *controlplane.ControlPlane) error {
				if err := bootstrap.EnsureDefaultClass(ctx, plane.AdminClient()); err != nil {
					return err
				}
				return bootstrap.WaitForDefaultServiceAccount(ctx, plane.AdminClient())
			}
			return run(ctx, cmd, log,
				func() (string, []any) { return plane.KubeconfigPath(), []any{"node", node.name} },
				planeComponent(cp, prepare, &plane),
				schedulerComponent(&plane),
				controllersComponent(func() (controller.Config, error) {
					rest, err := plane.RESTConfig(controlplane.VolplaneControllerIdentity)
					if err != nil {
						return controller.Config{}, err
					}
					return ctrl.config(rest, filepath.Join(cp.DataDir, "up")), nil
				}),
				nodeComponent(func() agent.Config {
					c := node.config(cp.DataDir)
					c.Server, c.CAData, c.IssueCertificate = plane.APIServerURL(), plane.CAPEM(), plane.NodeClientCert
					return c
				}),
			)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cp.DataDir, "data-dir", defaultDataDir(), "directory that holds everything: etcd, pki, kubelet, pool, images, logs, kubeconfig")
	fs.StringVar(&cp.Listen, "listen", "127.0.0.1:6443", "HOST:PORT the Kubernetes API listens on")
	common.add(fs)
	ctrl.add(fs)
	node.add(fs)
	return cmd
}
