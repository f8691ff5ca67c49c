package csidriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/timestamppb"

	"volplane/internal/csidriver/pool"
	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
	"volplane/internal/keylock"
	"volplane/internal/logging"
	"volplane/internal/version"
)

// Config configures the driver. Flags of `volplane csi` fill it.
type Config struct {
	// Name is the CSI driver name; default DriverName.
	Name string
	// Version is reported by GetPluginInfo; default volplane's version.
	Version string
	// NodeID is this node's ID, reported by NodeGetInfo and used as the
	// topology value of every volume.
	NodeID string
	// Pool configures the pool that holds the volumes.
	Pool pool.Config
	// MaxVolumesPerNode is how many volumes may be published to (and
	// staged on) this node at once; NodeGetInfo reports it.
	MaxVolumesPerNode int64
	// DefaultCapacity is the size of a volume created without a
	// required size.
	DefaultCapacity int64
	// Host performs the privileged work; default the real host.
	Host hostops.Host
}

// DefaultMaxVolumesPerNode bounds the volumes on one node: each block
// volume holds a loop device and every volume a few mounts.
const DefaultMaxVolumesPerNode = 1024

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Name == "" {
		c.Name = DriverName
	}
	if c.Version == "" {
		c.Version = version.String()
	}
	if c.NodeID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node ID: %w", err)
		}
		c.NodeID = host
	}
	if len(c.NodeID) > 128 {
		return fmt.Errorf("node ID %q is longer than 128 bytes", c.NodeID)
	}
	if c.MaxVolumesPerNode == 0 {
		c.MaxVolumesPerNode = DefaultMaxVolumesPerNode
	}
	if c.MaxVolumesPerNode < 0 {
		return errors.New("max volumes per node must not be negative")
	}
	if c.DefaultCapacity == 0 {
		c.DefaultCapacity = gib
	}
	if c.DefaultCapacity < 0 {
		return errors.New("default capacity must not be negative")
	}
	if c.Host == nil {
		c.Host = hostops.New()
	}
	return c.Pool.Validate()
}

// Driver is the built-in CSI driver: the Identity, Controller, Node and
// GroupController services over one pool.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	csi.UnimplementedGroupControllerServer

	cfg   Config
	host  hostops.Host
	pool  *pool.Pool
	store state.Store
	locks *keylock.Locks

	// spaceMu makes "check free capacity, then record the volume" one
	// step, so concurrent creates cannot both take the last bytes (nor
	// the same quota project ID). reserving is the bytes of creates past
	// the check whose record is still being written (see reserve).
	spaceMu   sync.Mutex
	reserving atomic.Int64

	ready atomic.Bool

	// space reports the pool's size and free bytes; tests replace it.
	space func() (total, free int64, err error)

	metrics *metrics
}

// New opens the pool and the records, finishes what a previous run left
// half done and returns a driver ready to serve.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := pool.Open(ctx, cfg.Pool, cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	store, err := state.OpenFileStore(p.MetaDir())
	if err != nil {
		return nil, fmt.Errorf("open driver state: %w", err)
	}
	d := &Driver{cfg: cfg, host: cfg.Host, pool: p, store: store, locks: keylock.New(), space: p.Space}
	d.metrics = newMetrics(d)
	d.recover(ctx)
	d.ready.Store(true)
	logging.FromContext(ctx).Info("CSI driver ready", "name", cfg.Name, "node", cfg.NodeID,
		"pool", p.Dir(), "mode", p.Mode(), "volumes", len(store.ListVolumes()))
	return d, nil
}

// Pool returns the driver's pool.
func (d *Driver) Pool() *pool.Pool { return d.pool }

// Store returns the driver's records.
func (d *Driver) Store() state.Store { return d.store }

// topology is the accessible topology of every volume: this node.
func (d *Driver) topology() *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: d.cfg.NodeID}}
}

// available returns the bytes new volumes may still take: the pool's free
// space, less what existing volumes are promised but have not written yet.
// Capacities are reserved in full (no overcommit), so a volume below its
// limit never meets a full pool.
func (d *Driver) available() (total, avail int64, err error) {
	total, free, err := d.space()
	if err != nil {
		return 0, 0, err
	}
	promised := d.reserving.Load()
	d.store.VisitVolumes(func(v *state.Volume) { promised += v.CapacityBytes })
	avail = total - promised
	if free < avail {
		avail = free
	}
	if avail < 0 {
		avail = 0
	}
	return total, avail, nil
}

// csiVolume is the CSI view of a volume.
func (d *Driver) csiVolume(v *state.Volume) *csi.Volume {
	out := &csi.Volume{
		CapacityBytes:      v.CapacityBytes,
		VolumeId:           v.ID,
		VolumeContext:      map[string]string{ParamType: string(v.Kind)},
		AccessibleTopology: []*csi.Topology{d.topology()},
	}
	if v.Kind == state.KindBlock && v.FSType != "" {
		out.VolumeContext[ParamFSType] = v.FSType
	}
	switch {
	case v.SourceSnapshotID != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: v.SourceSnapshotID}}}
	case v.SourceVolumeID != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.SourceVolumeID}}}
	}
	return out
}

// csiSnapshot is the CSI view of a snapshot.
//
// It leaves the alpha field accessible_topology empty although snapshots
// live on this node only: csi-sanity v5.6.0 compares a returned topology
// with reflect.DeepEqual against a message whose protobuf size cache the
// request marshalling has filled, so any driver that fills the field fails
// that spec. No CO reads the field yet; CreateSnapshot still refuses
// requisite topologies other than this node.
func (d *Driver) csiSnapshot(s *state.Snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SizeBytes:       s.SizeBytes,
		SnapshotId:      s.ID,
		SourceVolumeId:  s.SourceVolumeID,
		CreationTime:    timestamppb.New(s.CreatedAt),
		ReadyToUse:      s.Phase == state.Ready,
		GroupSnapshotId: s.GroupID,
	}
}

// volumePath is where a volume's data lives in the pool.
func (d *Driver) volumePath(v *state.Volume) string {
	if v.Kind == state.KindBlock {
		return d.pool.BlockPath(v.ID)
	}
	return d.pool.DirPath(v.ID)
}

func (d *Driver) logger(ctx context.Context) *slog.Logger { return logging.FromContext(ctx) }
