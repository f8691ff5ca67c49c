package csibench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config configures a run.
type Config struct {
	// Endpoint is the driver's unix socket, unix:///path.
	Endpoint string
	// WorkDir holds the staging and target paths; it must exist.
	WorkDir string
	// DirVolumes and BlockVolumes are how many volumes of each kind to
	// bring up.
	DirVolumes, BlockVolumes int
	// DirBytes and BlockBytes are their sizes.
	DirBytes, BlockBytes int64
	// DirParams and BlockParams are CreateVolume parameters.
	DirParams, BlockParams map[string]string
	// MetadataSize, when set, reports the bytes of the driver's records
	// while every volume is up.
	MetadataSize func() (int64, error)
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Endpoint == "" || c.WorkDir == "" {
		return errors.New("endpoint and work directory are required")
	}
	if c.DirVolumes < 0 || c.BlockVolumes < 0 || c.DirVolumes+c.BlockVolumes == 0 {
		return errors.New("volume counts must not be negative and not both zero")
	}
	if c.DirBytes <= 0 {
		c.DirBytes = 16 << 20
	}
	if c.BlockBytes <= 0 {
		c.BlockBytes = 16 << 20
	}
	return nil
}

// Result holds the figures of a run.
type Result struct {
	Driver, Version, Node string
	// Up are the create+stage+publish latencies per kind.
	UpDir, UpBlock []time.Duration
	// Down are the per-volume teardown latencies and their total.
	Down      []time.Duration
	DownTotal time.Duration
	// RPC holds every call's latency by method name.
	RPC map[string][]time.Duration
	// Metadata is the size of the driver's records at the peak, -1 when
	// unknown.
	Metadata int64
}

type volume struct {
	id, target, staging string
	block               bool
	published           bool
}

type client struct {
	csi.IdentityClient
	csi.ControllerClient
	csi.NodeClient
	node        *csi.NodeGetInfoResponse
	ctrlPublish bool
	stage       bool
	res         *Result
}

// timed runs one call and files its latency under name.
func (c *client) timed(name string, call func() error) error {
	start := time.Now()
	err := call()
	c.res.RPC[name] = append(c.res.RPC[name], time.Since(start))
	return err
}

// Run brings the volumes up one by one, measures, and takes them all down.
// Volumes it created are deleted also when the run fails half way.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path := strings.TrimPrefix(strings.TrimPrefix(cfg.Endpoint, "unix://"), "unix:")
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &client{IdentityClient: csi.NewIdentityClient(conn), ControllerClient: csi.NewControllerClient(conn),
		NodeClient: csi.NewNodeClient(conn)}
	res := &Result{Metadata: -1, RPC: map[string][]time.Duration{}}
	c.res = res
	if err := c.discover(ctx, res); err != nil {
		return nil, err
	}

	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	var vols []*volume
	defer func() {
		// Whatever happened, leave nothing behind.
		if len(vols) > 0 {
			_, _ = c.teardown(context.WithoutCancel(ctx), vols)
		}
	}()
	for i := 0; i < cfg.DirVolumes+cfg.BlockVolumes; i++ {
		block := i >= cfg.DirVolumes
		v := &volume{block: block,
			staging: filepath.Join(cfg.WorkDir, "staging", fmt.Sprintf("v%d", i)),
			target:  filepath.Join(cfg.WorkDir, "pods", fmt.Sprintf("v%d", i), "target")}
		if err := os.MkdirAll(v.staging, 0o750); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(v.target), 0o750); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("bench-%s-%d", run, i)
		size, params := cfg.DirBytes, cfg.DirParams
		if block {
			size, params = cfg.BlockBytes, cfg.BlockParams
		}
		start := time.Now()
		if err := c.up(ctx, v, name, size, params, &vols); err != nil {
			return nil, fmt.Errorf("volume %d: %w", i, err)
		}
		if block {
			res.UpBlock = append(res.UpBlock, time.Since(start))
		} else {
			res.UpDir = append(res.UpDir, time.Since(start))
		}
	}
	if cfg.MetadataSize != nil {
		if n, err := cfg.MetadataSize(); err == nil {
			res.Metadata = n
		}
	}
	start := time.Now()
	res.Down, err = c.teardown(ctx, vols)
	res.DownTotal = time.Since(start)
	vols = nil
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (c *client) discover(ctx context.Context, res *Result) error {
	info, err := c.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		return fmt.Errorf("GetPluginInfo: %w", err)
	}
	res.Driver, res.Version = info.GetName(), info.GetVendorVersion()
	if c.node, err = c.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil {
		return fmt.Errorf("NodeGetInfo: %w", err)
	}
	res.Node = c.node.GetNodeId()
	ccaps, err := c.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		return fmt.Errorf("ControllerGetCapabilities: %w", err)
	}
	for _, cp := range ccaps.GetCapabilities() {
		if cp.GetRpc().GetType() == csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME {
			c.ctrlPublish = true
		}
	}
	ncaps, err := c.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		return fmt.Errorf("NodeGetCapabilities: %w", err)
	}
	for _, cp := range ncaps.GetCapabilities() {
		if cp.GetRpc().GetType() == csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME {
			c.stage = true
		}
	}
	return nil
}

func capability(block bool) *csi.VolumeCapability {
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{
		Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	if block {
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	}
	return c
}

// up creates, publishes, stages and node-publishes one volume.
func (c *client) up(ctx context.Context, v *volume, name string, size int64, params map[string]string, vols *[]*volume) error {
	req := &csi.CreateVolumeRequest{
		Name:               name,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{capability(v.block)},
		Parameters:         params,
	}
	if t := c.node.GetAccessibleTopology(); t != nil {
		req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{t}, Preferred: []*csi.Topology{t}}
	}
	var created *csi.CreateVolumeResponse
	err := c.timed("CreateVolume", func() (err error) { created, err = c.CreateVolume(ctx, req); return err })
	if err != nil {
		return fmt.Errorf("CreateVolume: %w", err)
	}
	v.id = created.GetVolume().GetVolumeId()
	*vols = append(*vols, v)
	volCtx := created.GetVolume().GetVolumeContext()
	var pubCtx map[string]string
	if c.ctrlPublish {
		var resp *csi.ControllerPublishVolumeResponse
		err := c.timed("ControllerPublishVolume", func() (err error) {
			resp, err = c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
				VolumeId: v.id, NodeId: c.node.GetNodeId(), VolumeCapability: capability(v.block), VolumeContext: volCtx})
			return err
		})
		if err != nil {
			return fmt.Errorf("ControllerPublishVolume: %w", err)
		}
		v.published = true
		pubCtx = resp.GetPublishContext()
	}
	staging := ""
	if c.stage {
		staging = v.staging
		if err := c.timed("NodeStageVolume", func() error {
			_, err := c.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: v.id, PublishContext: pubCtx,
				StagingTargetPath: staging, VolumeCapability: capability(v.block), VolumeContext: volCtx})
			return err
		}); err != nil {
			return fmt.Errorf("NodeStageVolume: %w", err)
		}
	}
	if err := c.timed("NodePublishVolume", func() error {
		_, err := c.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.id, PublishContext: pubCtx,
			StagingTargetPath: staging, TargetPath: v.target, VolumeCapability: capability(v.block), VolumeContext: volCtx})
		return err
	}); err != nil {
		return fmt.Errorf("NodePublishVolume: %w", err)
	}
	return nil
}

// teardown takes every volume down in reverse order and reports each
// volume's time. It goes on after an error and returns the first one.
func (c *client) teardown(ctx context.Context, vols []*volume) ([]time.Duration, error) {
	var first error
	keep := func(err error, what string) {
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", what, err)
		}
	}
	var times []time.Duration
	for i := len(vols) - 1; i >= 0; i-- {
		v := vols[i]
		start := time.Now()
		keep(c.timed("NodeUnpublishVolume", func() error {
			_, err := c.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target})
			return err
		}), "NodeUnpublishVolume")
		if c.stage {
			keep(c.timed("NodeUnstageVolume", func() error {
				_, err := c.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging})
				return err
			}), "NodeUnstageVolume")
		}
		if v.published {
			keep(c.timed("ControllerUnpublishVolume", func() error {
				_, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.id, NodeId: c.node.GetNodeId()})
				return err
			}), "ControllerUnpublishVolume")
		}
		keep(c.timed("DeleteVolume", func() error {
			_, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.id})
			return err
		}), "DeleteVolume")
		times = append(times, time.Since(start))
	}
	return times, first
}

// Percentile returns the p-th percentile (0-100) of ds, nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return s[rank]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// Print writes the figures as a small table.
func (r *Result) Print(w io.Writer, label string) {
	fmt.Fprintf(w, "%s: driver %s %s, node %s\n", label, r.Driver, r.Version, r.Node)
	fmt.Fprintf(w, "  %-44s %6s %10s %10s %10s\n", "", "count", "p50", "p99", "max")
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(w, "  %-44s %6d %10s %10s %10s\n", name, len(ds), ms(Percentile(ds, 50)), ms(Percentile(ds, 99)), ms(Percentile(ds, 100)))
	}
	row("create+stage+publish, directory volumes", r.UpDir)
	row("create+stage+publish, block volumes", r.UpBlock)
	row("unpublish+unstage+delete, per volume", r.Down)
	fmt.Fprintf(w, "  teardown of all %d volumes: %s\n", len(r.Down), r.DownTotal.Round(time.Millisecond))
	fmt.Fprintf(w, "  per call:\n")
	for _, name := range []string{"CreateVolume", "ControllerPublishVolume", "NodeStageVolume", "NodePublishVolume",
		"NodeUnpublishVolume", "NodeUnstageVolume", "ControllerUnpublishVolume", "DeleteVolume"} {
		row("  "+name, r.RPC[name])
	}
	if r.Metadata >= 0 {
		fmt.Fprintf(w, "  driver metadata with every volume up: %d bytes (%.1f KiB)\n", r.Metadata, float64(r.Metadata)/1024)
	} else {
		fmt.Fprintf(w, "  driver metadata: unknown (not volplane's driver)\n")
	}
}
