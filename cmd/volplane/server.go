package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/controlplane"
)

func newServerCommand() *cobra.Command {
	var (
		common     commonFlags
		ctrl       controllerFlags
		cp         = controlplane.Config{LeaderElect: true}
		kubeconfig string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Kubernetes API and controllers (or, with --kubeconfig, only volplane's controllers against an existing cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, log := common.setup(cmd)
			defer stop()
			if kubeconfig != "" {
				if cmd.Flags().Changed("etcd-servers") || cmd.Flags().Changed("listen") {
					return errors.New("--kubeconfig runs only volplane's controllers against that cluster: --etcd-servers and --listen do not apply")
				}
				restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				ctrls, err := startControllers(ctx, ctrl.config(restCfg, kubeconfig+"|"+cp.DataDir))
				if err != nil {
					return err
				}
				log.Info("running volplane's controllers", "api", restCfg.Host)
				select {
				case <-ctx.Done():
					log.Info("stopping")
					stopWithin(log, 9*time.Second, ctrls.Stop)
					return nil
				case <-ctrls.Done():
					return fmt.Errorf("controllers: %w", ctrls.Err())
				}
			}

			return serve(ctx, cmd, log, cp, ctrl, cp.DataDir, nil)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cp.DataDir, "data-dir", defaultDataDir(), "directory that holds etcd, pki and kubeconfig")
	fs.StringVar(&cp.Listen, "listen", "127.0.0.1:6443", "HOST:PORT the Kubernetes API listens on")
	fs.StringSliceVar(&cp.EtcdServers, "etcd-servers", nil, "external etcd client URLs (URL[,URL]); empty runs etcd embedded under the data dir")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "run only volplane's controllers against the cluster this kubeconfig names")
	common.add(fs)
	ctrl.add(fs)
	return cmd
}
