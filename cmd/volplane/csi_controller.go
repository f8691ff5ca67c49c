package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/controller"
	"volplane/internal/controller/csicontroller"
	"volplane/internal/csi/client"
)

// newCSIControllerCommand runs the controller side of one CSI driver.
func newCSIControllerCommand() *cobra.Command {
	var (
		cfg           csicontroller.Config
		kubeconfig    string
		leaderElect   bool
		leaseNS       string
		workers       int
		metricsListen string
		verbosity     int
	)
	cmd := &cobra.Command{
		Use:   "csi-controller",
		Short: "Run the CSI controller side (provisioner, attacher, storage capacity) next to a CSI driver, against any cluster's API",
		Long: `Run volplane's CSI controller side for the driver on --csi-address:
the provisioner (CreateVolume/DeleteVolume for claims whose
storage-provisioner annotation names the driver) and the attacher
(ControllerPublish/Unpublish for its VolumeAttachments) and storage
capacity (CSIStorageCapacity from GetCapacity). One process where
upstream runs external-provisioner and external-attacher; the driver's
name comes from GetPluginInfo. Several replicas elect one leader per
driver through a Lease.

The API is the one --kubeconfig names, else the in-cluster configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop, log := signalContext(cmd.Context(), verbosity)
			defer stop()
			restCfg, err := apiConfig(kubeconfig)
			if err != nil {
				return err
			}
			// The driver's name decides the Lease, so it is read first.
			log.Info("waiting for the CSI driver", "endpoint", cfg.Endpoint)
			cli, info, _, err := csicontroller.Connect(ctx, client.Config{Endpoint: cfg.Endpoint, Timeout: cfg.Timeout})
			if err != nil {
				return nil // ctx is done: a signal
			}
			cli.Close()
			cfg.Name = info.Name
			host, _ := os.Hostname()
			sum := sha256.Sum256([]byte(cfg.Endpoint))
			m, err := controller.New(controller.Config{
				REST:           restCfg,
				Controllers:    []controller.Descriptor{csicontroller.Descriptor(cfg)},
				LeaderElect:    leaderElect,
				Identity:       host + "_" + hex.EncodeToString(sum[:6]),
				LeaseNamespace: leaseNS,
				LeaseName:      csicontroller.LeaseName(info.Name),
				Workers:        workers,
				MetricsListen:  metricsListen,
			})
			if err != nil {
				return err
			}
			log.Info("CSI controller", "driver", info.Name, "version", info.VendorVersion, "api", restCfg.Host)
			return m.Run(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Endpoint, "csi-address", "", "the CSI driver's socket, unix:///path (required)")
	fs.DurationVar(&cfg.Timeout, "timeout", client.DefaultTimeout, "timeout of each CSI call")
	fs.BoolVar(&cfg.StrictTopology, "strict-topology", false, "ask for the selected node's topology segment only when provisioning for delayed binding")
	fs.StringVar(&cfg.CapacityNamespace, "capacity-namespace", "kube-system", "namespace of the driver's CSIStorageCapacity objects")
	fs.DurationVar(&cfg.CapacityPollInterval, "capacity-poll-interval", time.Minute, "how often the driver's capacity is asked again without a change")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API (default: in-cluster configuration)")
	fs.BoolVar(&leaderElect, "leader-election", true, "elect one leader per driver through a Lease")
	fs.StringVar(&leaseNS, "leader-election-namespace", controller.LeaseNamespace, "namespace of the Lease")
	fs.IntVar(&workers, "worker-threads", 4, "workers per controller queue")
	fs.StringVar(&metricsListen, "metrics-listen", "", "loopback HOST:PORT where the controllers serve /metrics (off when empty)")
	fs.IntVarP(&verbosity, "v", "v", 0, "log verbosity: 1 logs every CSI call")
	return cmd
}

// apiConfig reads kubeconfig, or the in-cluster configuration without
// one.
func apiConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, errors.New("--kubeconfig is required outside a cluster")
	}
	return c, err
}
