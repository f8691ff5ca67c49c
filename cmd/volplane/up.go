package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"

	"volplane/internal/bootstrap"
	"volplane/internal/controller"
	"volplane/internal/controller/csicontroller"
	"volplane/internal/controlplane"
	"volplane/internal/csidriver"
	"volplane/internal/node/agent"
)

func newUpCommand() *cobra.Command {
	var (
		common commonFlags
		ctrl   controllerFlags
		cp     = controlplane.Config{SchedulerPlugins: schedulerPlugins()}
		node   nodeFlags
		pool   string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: etcd, the Kubernetes API, the scheduler, volplane's storage controllers and a node agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, log, err := common.setup(cmd)
			if err != nil {
				return err
			}
			defer stop()
			if node.name == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("--node-name: %w", err)
				}
				node.name = h
			}
			driver, err := upDriver(cp.DataDir, node.name, pool, ctrl.csi)
			if err != nil {
				return err
			}
			var plane *controlplane.ControlPlane
			prepare := func(ctx context.Context, plane *controlplane.ControlPlane) error {
				if err := bootstrap.EnsureDefaultClass(ctx, plane.AdminClient()); err != nil {
					return err
				}
				if err := bootstrap.EnsureBuiltinDriver(ctx, plane.AdminClient()); err != nil {
					return err
				}
				if err := node.local.ensureClass(ctx, plane.AdminClient()); err != nil {
					return err
				}
				return bootstrap.WaitForDefaultServiceAccount(ctx, plane.AdminClient())
			}
			return run(ctx, cmd, log,
				func() (string, []any) { return plane.KubeconfigPath(), []any{"node", node.name} },
				planeComponent(cp, prepare, &plane),
				schedulerComponent(&plane),
				// Before the controllers, which call it, and the agent,
				// whose plugin watcher then finds its registration socket
				// at the first scan; it stops after both.
				driverComponent(driver),
				controllersComponent(func() (controller.Config, error) {
					rest, err := plane.RESTConfig(controlplane.VolplaneControllerIdentity)
					if err != nil {
						return controller.Config{}, err
					}
					c := ctrl.config(rest, filepath.Join(cp.DataDir, "up"))
					c.Controllers = append(c.Controllers, csicontroller.Descriptor(builtinController(driver)))
					return c, nil
				}),
				nodeComponent(func() agent.Config {
					c := node.config(cp.DataDir)
					c.Server, c.CAData, c.IssueCertificate = plane.APIServerURL(), plane.CAPEM(), plane.NodeClientCert
					c.EmptyDirBtrfsDir = driver.emptyDirDir()
					return c
				}),
				node.local.component(node.name, func() (*rest.Config, error) {
					return plane.RESTConfig(controlplane.LocalProvisionerIdentity)
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
	fs.StringVar(&pool, "pool-size", "", "size of the built-in driver's pool image DIR/pool/pool.img, used when DIR's filesystem enforces no quota (default 10Gi for a new image; a larger size grows an existing one)")
	return cmd
}

// upDriver is the built-in driver of `volplane up`: pool DIR/pool, the
// node's name as its node ID. Its controller side runs in up's
// controller manager, so --csi-controller may not name it again.
func upDriver(dataDir, nodeName, poolSize string, named csiControllerFlag) (driverRun, error) {
	for _, d := range named.drivers {
		if d.Name == csidriver.DriverName {
			return driverRun{}, fmt.Errorf("--csi-controller %s: up runs the built-in driver's controller side itself", d.Name)
		}
	}
	var size int64
	if poolSize != "" {
		q, err := resource.ParseQuantity(poolSize)
		if err != nil {
			return driverRun{}, fmt.Errorf("--pool-size: %w", err)
		}
		size = q.Value()
	}
	return builtinDriver(dataDir, nodeName, size)
}
