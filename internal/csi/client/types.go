package client

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// AccessMode is a CSI volume access mode.
type AccessMode int

// The CSI access modes, as the spec names them.
const (
	SingleNodeWriter AccessMode = iota + 1
	SingleNodeReaderOnly
	MultiNodeReaderOnly
	MultiNodeSingleWriter
	MultiNodeMultiWriter
	SingleNodeSingleWriter
	SingleNodeMultiWriter
)

var accessModes = map[AccessMode]csi.VolumeCapability_AccessMode_Mode{
	SingleNodeWriter:       csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
	SingleNodeReaderOnly:   csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
	MultiNodeReaderOnly:    csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
	MultiNodeSingleWriter:  csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER,
	MultiNodeMultiWriter:   csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
	SingleNodeSingleWriter: csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
	SingleNodeMultiWriter:  csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
}

func (m AccessMode) String() string {
	if v, ok := accessModes[m]; ok {
		return v.String()
	}
	return fmt.Sprintf("AccessMode(%d)", int(m))
}

// Capability is a CSI volume capability: block or mount access, and an
// access mode.
type Capability struct {
	// Block asks for a raw block device; otherwise a mounted filesystem
	// of FSType (empty: the driver's default) with MountFlags.
	Block      bool
	FSType     string
	MountFlags []string
	AccessMode AccessMode
	// VolumeMountGroup is the group a driver with VOLUME_MOUNT_GROUP
	// makes the mounted filesystem writable by (a pod's fsGroup).
	VolumeMountGroup string
}

// Validate checks the capability.
func (c Capability) Validate() error {
	if _, ok := accessModes[c.AccessMode]; !ok {
		return fmt.Errorf("unknown access mode %d", int(c.AccessMode))
	}
	if c.Block && (c.FSType != "" || len(c.MountFlags) > 0 || c.VolumeMountGroup != "") {
		return errors.New("a block capability has no filesystem or mount flags")
	}
	return nil
}

func (c Capability) proto() *csi.VolumeCapability {
	vc := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: accessModes[c.AccessMode]}}
	if c.Block {
		vc.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		vc.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{
			FsType: c.FSType, MountFlags: c.MountFlags, VolumeMountGroup: c.VolumeMountGroup}}
	}
	return vc
}

// Topology is one topology segment: label key to value.
type Topology map[string]string

func topologies(ts []Topology) []*csi.Topology {
	var out []*csi.Topology
	for _, t := range ts {
		out = append(out, &csi.Topology{Segments: maps.Clone(t)})
	}
	return out
}

func fromTopologies(ts []*csi.Topology) []Topology {
	var out []Topology
	for _, t := range ts {
		out = append(out, Topology(maps.Clone(t.GetSegments())))
	}
	return out
}

// CreateVolumeRequest asks a driver for a volume.
type CreateVolumeRequest struct {
	// Name is the idempotency key: a second call with the same name
	// returns the same volume.
	Name string
	// RequiredBytes and LimitBytes bound the capacity; 0 is no bound.
	RequiredBytes, LimitBytes int64
	Capabilities              []Capability
	Parameters                map[string]string
	Secrets                   map[string]string
	// Requisite and Preferred are the accessibility requirements; both
	// empty sends none.
	Requisite, Preferred []Topology
	// SourceVolumeID makes the volume a clone of that volume.
	SourceVolumeID string
}

// Validate checks the request.
func (r *CreateVolumeRequest) Validate() error {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("no name"))
	}
	if r.RequiredBytes < 0 || r.LimitBytes < 0 || (r.LimitBytes > 0 && r.LimitBytes < r.RequiredBytes) {
		errs = append(errs, fmt.Errorf("bad capacity range [%d, %d]", r.RequiredBytes, r.LimitBytes))
	}
	if len(r.Capabilities) == 0 {
		errs = append(errs, errors.New("no volume capability"))
	}
	for _, c := range r.Capabilities {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(r.Preferred) > 0 && len(r.Requisite) == 0 {
		errs = append(errs, errors.New("preferred topology without requisite topology"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi CreateVolume %q: %w", r.Name, err)
	}
	return nil
}

// LogValue logs the request without its secrets (their keys only).
func (r *CreateVolumeRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", r.Name),
		slog.Int64("requiredBytes", r.RequiredBytes),
		slog.Any("parameters", r.Parameters),
		slog.Any("secretKeys", slices.Sorted(maps.Keys(r.Secrets))),
		slog.Any("requisite", r.Requisite),
	)
}

func (r *CreateVolumeRequest) proto() *csi.CreateVolumeRequest {
	req := &csi.CreateVolumeRequest{
		Name:       r.Name,
		Parameters: r.Parameters,
		Secrets:    r.Secrets,
	}
	if r.RequiredBytes > 0 || r.LimitBytes > 0 {
		req.CapacityRange = &csi.CapacityRange{RequiredBytes: r.RequiredBytes, LimitBytes: r.LimitBytes}
	}
	for _, c := range r.Capabilities {
		req.VolumeCapabilities = append(req.VolumeCapabilities, c.proto())
	}
	if r.SourceVolumeID != "" {
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: r.SourceVolumeID}}}
	}
	if len(r.Requisite) > 0 || len(r.Preferred) > 0 {
		req.AccessibilityRequirements = &csi.TopologyRequirement{
			Requisite: topologies(r.Requisite), Preferred: topologies(r.Preferred)}
	}
	return req
}

// Volume is a volume a driver created.
type Volume struct {
	ID            string
	CapacityBytes int64
	// Context is the volume context, passed back to every later call.
	Context            map[string]string
	AccessibleTopology []Topology
}

// PublishRequest asks a driver to make a volume available on a node.
type PublishRequest struct {
	VolumeID   string
	NodeID     string
	Capability Capability
	ReadOnly   bool
	Secrets    map[string]string
	// Context is the volume context from CreateVolume (the PV's volume
	// attributes).
	Context map[string]string
}

// Validate checks the request.
func (r *PublishRequest) Validate() error {
	var errs []error
	if r.VolumeID == "" {
		errs = append(errs, errors.New("no volume ID"))
	}
	if r.NodeID == "" {
		errs = append(errs, errors.New("no node ID"))
	}
	if err := r.Capability.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi ControllerPublishVolume %q: %w", r.VolumeID, err)
	}
	return nil
}

// CapacityRequest asks how much space is left for volumes of the given
// shape in one topology segment.
type CapacityRequest struct {
	Capabilities []Capability
	Parameters   map[string]string
	// Topology is the segment asked about; nil asks about the whole
	// driver.
	Topology Topology
}

// Validate checks the request.
func (r *CapacityRequest) Validate() error {
	for _, c := range r.Capabilities {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("csi GetCapacity: %w", err)
		}
	}
	return nil
}

// Capacity is a GetCapacity answer. MaximumVolumeSize is 0 when the
// driver does not say.
type Capacity struct {
	AvailableBytes    int64
	MaximumVolumeSize int64
}
