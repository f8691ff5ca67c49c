package csicontroller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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
		return &driverController{cfg: cfg, cctx: cctx}, nil
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
	log := logging.FromContext(ctx)
	cli, info, caps, err := Connect(ctx, client.Config{Endpoint: d.cfg.Endpoint, Timeout: d.cfg.Timeout})
	if err != nil {
		return // ctx is done
	}
	defer cli.Close()
	d.cli = cli
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
			StrictTopology: d.cfg.StrictTopology,
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

// probeBackoff is how Connect waits between attempts: doubling from
// initial up to max, then every max, for as long as its context lasts.
var probeBackoff = struct{ initial, max time.Duration }{100 * time.Millisecond, 10 * time.Second}

// Connect waits until the driver at cfg's endpoint answers GetPluginInfo,
// Probe says ready and its capabilities are read, retrying with backoff,
// and returns a client of it. It fails only when ctx is done, quoting the
// last error. Each attempt dials afresh: a driver that comes up late is
// found at the next attempt, not after gRPC's own reconnect backoff
// (which grows to two minutes).
func Connect(ctx context.Context, cfg client.Config) (*client.Client, client.PluginInfo, client.Capabilities, error) {
	delay := probeBackoff.initial
	var last error
	for {
		cli, info, caps, err := probe(ctx, cfg)
		if err == nil {
			return cli, info, caps, nil
		}
		// An attempt cut short by the cancellation says nothing about
		// the driver: the error worth quoting is the attempt's before.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, info, caps, fmt.Errorf("waiting for the CSI driver at %s: %w; last error: %w", cfg.Endpoint, ctx.Err(), last)
		case <-time.After(delay):
		}
		delay = min(2*delay, probeBackoff.max)
	}
}

// probe is one attempt of Connect.
func probe(ctx context.Context, cfg client.Config) (*client.Client, client.PluginInfo, client.Capabilities, error) {
	var caps client.Capabilities
	cli, err := client.New(cfg)
	if err != nil {
		return nil, client.PluginInfo{}, caps, err
	}
	info, err := cli.PluginInfo(ctx)
	if err == nil {
		var ready bool
		if ready, err = cli.Probe(ctx); err == nil && !ready {
			err = fmt.Errorf("driver %s is not ready", info.Name)
		}
	}
	if err == nil {
		caps, err = cli.Capabilities(ctx)
	}
	if err != nil {
		cli.Close()
		return nil, info, caps, err
	}
	return cli, info, caps, nil
}
