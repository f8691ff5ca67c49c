package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/atomicfile"
	"volplane/internal/component"
	"volplane/internal/controller"
	"volplane/internal/controlplane"
)

func newServerCommand() *cobra.Command {
	var (
		common     commonFlags
		ctrl       controllerFlags
		cp         = controlplane.Config{LeaderElect: true, SchedulerPlugins: schedulerPlugins()}
		kubeconfig string
		tokenTTL   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Kubernetes API, the scheduler and controllers (or, with --kubeconfig, only volplane's controllers against an existing cluster)",
		Long: `Run the Kubernetes API, the scheduler and the controllers, against embedded
etcd or --etcd-servers. Nodes join with 'volplane node --kubeconfig
DIR/bootstrap-kubeconfig': the server writes that file, holding a
bootstrap token valid for --bootstrap-token-ttl, each time it starts.

With --kubeconfig FILE it runs only volplane's controllers against the
cluster FILE names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, log, err := common.setup(cmd)
			if err != nil {
				return err
			}
			defer stop()
			if kubeconfig != "" {
				if cmd.Flags().Changed("etcd-servers") || cmd.Flags().Changed("listen") {
					return errors.New("--kubeconfig runs only volplane's controllers against that cluster: --etcd-servers and --listen do not apply")
				}
				restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				r := component.Runner{
					Components: []component.Component{controllersComponent(func() (controller.Config, error) {
						return ctrl.config(restCfg, kubeconfig+"|"+cp.DataDir), nil
					})},
					Ready: func() { log.Info("running volplane's controllers", "api", restCfg.Host) },
				}
				return r.Run(ctx)
			}

			var plane *controlplane.ControlPlane
			bootstrapKubeconfig := filepath.Join(cp.DataDir, "bootstrap-kubeconfig")
			prepare := func(ctx context.Context, plane *controlplane.ControlPlane) error {
				data, err := plane.BootstrapKubeconfig(ctx, tokenTTL)
				if err != nil {
					return err
				}
				if err := atomicfile.Write(bootstrapKubeconfig, data); err != nil {
					return err
				}
				// For joining nodes that run the local static provisioner
				// (volplane node --local-provisioner-kubeconfig).
				if data, err = plane.LocalProvisionerKubeconfig(); err != nil {
					return err
				}
				return atomicfile.Write(filepath.Join(cp.DataDir, "local-provisioner-kubeconfig"), data)
			}
			return run(ctx, cmd, log,
				func() (string, []any) {
					return plane.KubeconfigPath(), []any{"join", "volplane node --kubeconfig " + bootstrapKubeconfig + " --root-dir DIR --node-name NAME"}
				},
				planeComponent(cp, prepare, &plane),
				schedulerComponent(&plane),
				controllersComponent(func() (controller.Config, error) {
					rest, err := plane.RESTConfig(controlplane.VolplaneControllerIdentity)
					if err != nil {
						return controller.Config{}, err
					}
					return ctrl.config(rest, cp.DataDir), nil
				}),
			)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cp.DataDir, "data-dir", defaultDataDir(), "directory that holds etcd, pki, kubeconfig and bootstrap-kubeconfig")
	fs.StringVar(&cp.Listen, "listen", "127.0.0.1:6443", "HOST:PORT the Kubernetes API listens on")
	fs.StringSliceVar(&cp.EtcdServers, "etcd-servers", nil, "external etcd client URLs (URL[,URL]); empty runs etcd embedded under the data dir")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "run only volplane's controllers against the cluster this kubeconfig names")
	fs.DurationVar(&tokenTTL, "bootstrap-token-ttl", 24*time.Hour, "how long the bootstrap token in DIR/bootstrap-kubeconfig lets nodes join")
	common.add(fs)
	ctrl.add(fs)
	return cmd
}
