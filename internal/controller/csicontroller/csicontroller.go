package csicontroller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"volplane/internal/controller"
	"volplane/internal/controller/attacher"
	"volplane/internal/controller/capacity"
	"volplane/internal/controller/provisioner"
	"volplane/internal/csi/client"
	"volplane/internal/logging"
)

// Config names one CSI driver whose controller side volplane runs.
type Config struct {
	// Name is the driver's name. Empty: read from the driver
	// (GetPluginInfo) when the controller starts; set, it must match.
	Name string
	// Endpoint is the driver's socket, unix:///path.
	Endpoint string
	// Timeout bounds each CSI call; default client.DefaultTimeout.
	Timeout time.Duration
	// StrictTopology: see provisioner.Config.
	StrictTopology bool
	// CapacityNamespace holds the driver's CSIStorageCapacity objects
	// (default kube-system); CapacityPollInterval is how often capacity
	// is asked again without a change (default one minute).
	CapacityNamespace    string
	CapacityPollInterval time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	cc := client.Config{Endpoint: c.Endpoint, Timeout: c.Timeout}
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("csi controller: %w", err)
	}
	c.Timeout = cc.Timeout
	return nil
}

// ControllerName is the name of a driver's controller in the manager
// (and for --disable-controllers): csi-controller-<driver>.
func ControllerName(driver string) string { return "csi-controller-" + driver }

// LeaseName is the Lease `volplane csi-controller` elects a leader of one
// driver with: one sidecar per driver acts at a time.
func LeaseName(driver string) string {
	return "volplane-csi-controller-" + strings.NewReplacer("/", "-", ".", "-", "_", "-").Replace(driver)
}

// Descriptor runs the controller side of one driver (provisioner,
// attacher, storage capacity) in a controller manager. The driver need not be up when the
// manager starts: the controller waits for it.
func Descriptor(cfg Config) controller.Descriptor {
	name := cfg.Name
	if name == "" {
		name = cfg.Endpoint
	}
	return controller.Descriptor{Name: ControllerName(name), Init: func(ctx context.Context, cctx *controller.Context) (controller.Controller, error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		cli, err := client.New(client.Config{Endpoint: cfg.Endpoint, Timeout: cfg.Timeout})
		if err != nil {
			return nil, err
		}
		// The informers every part uses are registered now, before the
		// manager starts the factory; the parts add their handlers once
		// the driver answers.
		f := cctx.Informers
		f.Core().V1().PersistentVolumeClaims().Informer()
		f.Core().V1().PersistentVolumes().Informer()
		f.Core().V1().Nodes().Informer()
		f.Storage().V1().StorageClasses().Informer()
		f.Storage().V1().CSINodes().Informer()
		f.Storage().V1().VolumeAttachments().Informer()
		f.Storage().V1().CSIDrivers().Informer()
		f.Storage().V1().CSIStorageCapacities().Informer()
		return &driverController{cfg: cfg, cctx: cctx, cli: cli}, nil
	}}
}

type driverController struct {
	cfg  Config
	cctx *controller.Context
	cli  *client.Client
}

// Run waits for the driver, builds its controllers and runs them until
// ctx is done.
func (d *driverController) Run(ctx context.Context) {
	defer d.cli.Close()
	log := logging.FromContext(ctx)
	info, caps, err := Probe(ctx, d.cli)
	if err != nil {
		return // ctx is done
	}
	if d.cfg.Name != "" && info.Name != d.cfg.Name {
		log.Error("the driver on the socket is another driver; not running its controllers",
			"endpoint", d.cfg.Endpoint, "want", d.cfg.Name, "got", info.Name)
		return
	}
	log = log.With("driver", info.Name)
	ctx = logging.NewContext(ctx, log)
	parts, err := d.build(info.Name, caps)
	if err != nil {
		log.Error("cannot start the CSI controllers", "err", err)
		return
	}
	d.cctx.Informers.Start(ctx.Done())
	d.cctx.Informers.WaitForCacheSync(ctx.Done())
	log.Info("running CSI controllers", "endpoint", d.cfg.Endpoint, "parts", len(parts),
		"publish", caps.PublishUnpublish, "topology", caps.Topology)
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	wg.Wait()
}

func (d *driverController) build(name string, caps client.Capabilities) ([]controller.Controller, error) {
	var parts []controller.Controller
	if !caps.ControllerService {
		return nil, errors.New("the driver has no controller service")
	}
	if caps.CreateDelete {
		p, err := provisioner.New(provisioner.Config{
			Driver: name, CSI: d.cli, Capabilities: caps,
			Client: d.cctx.Client, Informers: d.cctx.Informers, Recorder: d.cctx.Recorder(name),
			Workers: d.cctx.Workers, StrictTopology: d.cfg.StrictTopology,
		})
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	a, err := attacher.New(attacher.Config{Driver: name, CSI: d.cli, Capabilities: caps,
		Client: d.cctx.Client, Informers: d.cctx.Informers, Workers: d.cctx.Workers})
	if err != nil {
		return nil, err
	}
	parts = append(parts, a)
	if caps.GetCapacity && caps.Topology {
		c, err := capacity.New(capacity.Config{Driver: name, CSI: d.cli, Capabilities: caps,
			Client: d.cctx.Client, Informers: d.cctx.Informers,
			Namespace: d.cfg.CapacityNamespace, PollInterval: d.cfg.CapacityPollInterval})
		if err != nil {
			return nil, err
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// Probe waits until the driver answers GetPluginInfo, Probe says ready,
// and its capabilities are read, retrying with backoff; it fails only
// when ctx is done.
func Probe(ctx context.Context, cli *client.Client) (client.PluginInfo, client.Capabilities, error) {
	var (
		info client.PluginInfo
		caps client.Capabilities
		last error
	)
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 10 * time.Second}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		var err error
		if info, err = cli.PluginInfo(ctx); err != nil {
			last = err
			return false, nil
		}
		if ready, err := cli.Probe(ctx); err != nil || !ready {
			last = fmt.Errorf("driver %s is not ready: %v", info.Name, err)
			return false, nil
		}
		if caps, err = cli.Capabilities(ctx); err != nil {
			last = err
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w; last error: %w", err, last)
		}
		return info, caps, fmt.Errorf("waiting for the CSI driver at %s: %w", cli.Endpoint(), err)
	}
	return info, caps, nil
}
