package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

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
			start := time.Now()
			plane, err := controlplane.Start(ctx, cp)
			if err != nil {
				return err
			}
			admin, err := plane.RESTConfig(controlplane.AdminIdentity)
			if err != nil {
				plane.Stop()
				return err
			}
			cs, err := kubernetes.NewForConfig(admin)
			if err == nil {
				err = bootstrap.EnsureDefaultClass(ctx, cs)
			}
			if err != nil {
				plane.Stop()
				return err
			}
			ctrlREST, err := plane.RESTConfig(controlplane.VolplaneControllerIdentity)
			if err != nil {
				plane.Stop()
				return err
			}
			ctrls, err := startControllers(ctx, ctrl.config(ctrlREST, filepath.Join(cp.DataDir, "up")))
			if err != nil {
				plane.Stop()
				return err
			}
			log.Info("ready", "took", time.Since(start).Round(time.Millisecond), "kubeconfig", plane.KubeconfigPath(), "node", node)
			printReady(cmd, "up", plane.KubeconfigPath())

			var runErr error
			select {
			case <-ctx.Done():
				log.Info("stopping")
			case err := <-plane.Err():
				runErr = fmt.Errorf("control plane: %w", err)
			case <-ctrls.Done():
				runErr = fmt.Errorf("controllers: %w", ctrls.Err())
			}
			stopWithin(log, 9*time.Second, ctrls.Stop, plane.Stop)
			return runErr
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
