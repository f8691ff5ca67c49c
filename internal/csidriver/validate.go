package csidriver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// Names the driver answers to and reads.
const (
	// DriverName is the CSI driver name.
	DriverName = "local.csi.volplane.io"
	// TopologyKey is the topology segment that pins a volume to its node.
	TopologyKey = "topology.local.csi.volplane.io/node"

	// ParamType selects the volume kind: "dir" or "block".
	ParamType = "type"
	// ParamFSType selects the filesystem of a block volume used in
	// Filesystem mode: "ext4" (default) or "xfs".
	ParamFSType = "fsType"
	// MutableCompression is the mutable parameter that sets btrfs
	// compression for new writes: none, zstd, lzo or zlib.
	MutableCompression = "compression"

	// k8sParamPrefix marks parameters the Kubernetes external-provisioner
	// adds (PVC name, namespace...); they are accepted and ignored.
	k8sParamPrefix = "csi.storage.k8s.io/"

	// publishReadOnly is the publish_context key that carries a
	// read-only ControllerPublishVolume to the node.
	publishReadOnly = "readonly"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30

	// allocUnit is the granularity of capacities: the page and
	// filesystem block size.
	allocUnit = 4 * kib
)

// minSize is the smallest volume of a kind and filesystem the driver makes:
// mkfs.xfs refuses devices under 300 MiB; ext4 and raw devices work from
// 1 MiB; a qgroup limit works at any size.
func minSize(kind state.Kind, fsType string) int64 {
	switch {
	case kind == state.KindDir:
		return allocUnit
	case fsType == "xfs":
		return 300 * mib
	default:
		return mib
	}
}

var supportedFSTypes = map[string]bool{"ext4": true, "xfs": true}

var compressionValues = map[string]bool{"none": true, "zstd": true, "lzo": true, "zlib": true}

// volumeParams are the parsed CreateVolume parameters.
type volumeParams struct {
	kind   state.Kind
	fsType string
}

// parseParameters reads the CreateVolume parameters. The kind defaults to
// block when a capability asks for a raw block device, else dir.
func parseParameters(params map[string]string, caps []*csi.VolumeCapability) (volumeParams, error) {
	var p volumeParams
	for k, v := range params {
		switch {
		case k == ParamType:
			switch state.Kind(v) {
			case state.KindDir, state.KindBlock:
				p.kind = state.Kind(v)
			default:
				return p, errorf(codes.InvalidArgument, "parameter %s=%q: must be dir or block", k, v)
			}
		case k == ParamFSType:
			if !supportedFSTypes[v] {
				return p, errorf(codes.InvalidArgument, "parameter %s=%q: must be ext4 or xfs", k, v)
			}
			p.fsType = v
		case strings.HasPrefix(k, k8sParamPrefix):
		default:
			return p, errorf(codes.InvalidArgument, "unknown parameter %q", k)
		}
	}
	wantsBlock := false
	for _, c := range caps {
		if c.GetBlock() != nil {
			wantsBlock = true
		}
	}
	if p.kind == "" {
		p.kind = state.KindDir
		if wantsBlock || p.fsType != "" {
			p.kind = state.KindBlock
		}
	}
	if p.kind == state.KindDir {
		if wantsBlock {
			return p, errorf(codes.InvalidArgument, "a dir volume cannot be used as a raw block device; use %s=block", ParamType)
		}
		if p.fsType != "" {
			return p, errorf(codes.InvalidArgument, "parameter %s applies to block volumes only", ParamFSType)
		}
	}
	for _, c := range caps {
		if fs := c.GetMount().GetFsType(); fs != "" && p.kind == state.KindBlock {
			if !supportedFSTypes[fs] {
				return p, errorf(codes.InvalidArgument, "fs_type %q: must be ext4 or xfs", fs)
			}
			if p.fsType == "" {
				p.fsType = fs
			} else if p.fsType != fs {
				return p, errorf(codes.InvalidArgument, "fs_type %q contradicts parameter %s=%q", fs, ParamFSType, p.fsType)
			}
		}
	}
	return p, nil
}

// checkMutableParameters validates ControllerModifyVolume and CreateVolume
// mutable parameters.
func checkMutableParameters(m map[string]string) error {
	for k, v := range m {
		switch k {
		case MutableCompression:
			if !compressionValues[v] {
				return errorf(codes.InvalidArgument, "mutable parameter %s=%q: must be none, zstd, lzo or zlib", k, v)
			}
		default:
			return errorf(codes.InvalidArgument, "unsupported mutable parameter %q", k)
		}
	}
	return nil
}

// singleNodeMode reports whether the access mode keeps the volume on one
// node, the only kind of access a local volume can offer.
func singleNodeMode(m csi.VolumeCapability_AccessMode_Mode) bool {
	switch m {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		return true
	}
	return false
}

func readerOnly(m csi.VolumeCapability_AccessMode_Mode) bool {
	return m == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY ||
		m == csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
}

// checkCapability validates the shape of one capability: an access type
// and a supported access mode, mount flags that parse.
func checkCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return errorf(codes.InvalidArgument, "volume capability is required")
	}
	if c.GetAccessMode() == nil {
		return errorf(codes.InvalidArgument, "volume capability has no access mode")
	}
	mode := c.GetAccessMode().GetMode()
	if mode == csi.VolumeCapability_AccessMode_UNKNOWN {
		return errorf(codes.InvalidArgument, "volume capability has an unknown access mode")
	}
	if !singleNodeMode(mode) {
		return errorf(codes.InvalidArgument, "access mode %s: volumes of %s are local to one node", mode, DriverName)
	}
	switch {
	case c.GetBlock() != nil:
	case c.GetMount() != nil:
		if _, err := hostops.ParseMountOptions(c.GetMount().GetMountFlags()); err != nil {
			return errorf(codes.InvalidArgument, "mount flags: %w", err)
		}
		if c.GetMount().GetVolumeMountGroup() != "" {
			return errorf(codes.InvalidArgument, "volume_mount_group is not supported")
		}
	default:
		return errorf(codes.InvalidArgument, "volume capability has no access type")
	}
	return nil
}

// checkCapabilities validates a non-empty list of capabilities.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return errorf(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if err := checkCapability(c); err != nil {
			return err
		}
	}
	return nil
}

// capabilityFits reports why a valid capability cannot be used with
// volume v, or nil when it can: raw block needs a block volume, and a
// filesystem type asked for a formatted block volume must match.
func capabilityFits(v *state.Volume, c *csi.VolumeCapability) error {
	if c.GetBlock() != nil && v.Kind != state.KindBlock {
		return fmt.Errorf("volume %s is a directory and cannot be a raw block device", v.ID)
	}
	if fs := c.GetMount().GetFsType(); fs != "" && v.Kind == state.KindBlock {
		have := v.Formatted
		if have == "" {
			have = v.FSType
		}
		if !supportedFSTypes[fs] {
			return fmt.Errorf("fs_type %q is not supported", fs)
		}
		if have != "" && have != fs {
			return fmt.Errorf("volume %s holds %s, not %s", v.ID, have, fs)
		}
	}
	return nil
}

// volumeSize chooses the capacity for a capacity range: the required bytes
// (or def when none are required) rounded up to the allocation unit and
// raised to min, within the limit. It fails with InvalidArgument for a
// malformed range and OutOfRange when no size fits.
func volumeSize(r *csi.CapacityRange, def, min int64) (int64, error) {
	req, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || limit < 0 {
		return 0, errorf(codes.InvalidArgument, "capacity range must not be negative")
	}
	if limit > 0 && req > limit {
		return 0, errorf(codes.InvalidArgument, "required bytes %d exceed limit bytes %d", req, limit)
	}
	size := req
	if size == 0 {
		size = def
		if limit > 0 && size > limit {
			size = limit
		}
	}
	size = roundUp(size, allocUnit)
	if size < min {
		size = min
	}
	if limit > 0 && size > limit {
		size = limit / allocUnit * allocUnit
		if size < req || size < min {
			return 0, errorf(codes.OutOfRange, "no capacity between %d and %d bytes is possible: sizes are multiples of %d bytes and at least %d", req, limit, allocUnit, min)
		}
	}
	return size, nil
}

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// fitsRange reports whether an existing capacity satisfies a range.
func fitsRange(capacity int64, r *csi.CapacityRange) bool {
	if r.GetRequiredBytes() > capacity {
		return false
	}
	return r.GetLimitBytes() == 0 || capacity <= r.GetLimitBytes()
}

// topologyAccepts reports whether a topology requirement lets a volume
// live on node: no requisite topologies, or one that names node.
func topologyAccepts(req *csi.TopologyRequirement, node string) bool {
	if len(req.GetRequisite()) == 0 {
		return true
	}
	for _, t := range req.GetRequisite() {
		if t.GetSegments()[TopologyKey] == node {
			return true
		}
	}
	return false
}

// sameStrings reports whether a and b hold the same strings, in any order.
func sameStrings(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
