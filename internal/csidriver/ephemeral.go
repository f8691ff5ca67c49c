package csidriver

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

// Ephemeral (CSI inline) volumes: the CO publishes them with no
// CreateVolume, no ControllerPublish and no staging, marking the volume
// context with ephemeralKey.
const (
	// ephemeralKey is the volume context key the kubelet (and volplane's
	// node agent) sets to "true" for an inline volume of a driver with
	// podInfoOnMount.
	ephemeralKey = "csi.storage.k8s.io/ephemeral"
	// ParamSize is the volume attribute that sizes an ephemeral volume:
	// bytes, or a Kubernetes quantity with a binary (Ki, Mi, Gi, Ti) or
	// decimal (k, M, G, T) suffix.
	ParamSize = "size"
	// DefaultEphemeralSize is the size of an ephemeral volume without
	// ParamSize.
	DefaultEphemeralSize = 100 * mib
	// maxEphemeralIDLen bounds the CO's volume handle, which names the
	// volume's pool entry.
	maxEphemeralIDLen = 128
)

// ephemeralIDRE is what a CO's ephemeral volume handle may look like: the
// handle names a directory of the pool.
var ephemeralIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// isEphemeral reports whether a record is an ephemeral volume, which
// NodeUnpublishVolume deletes.
func isEphemeral(v *state.Volume) bool { return v.Parameters[ephemeralKey] == "true" }

// ephemeralSize parses ParamSize.
func ephemeralSize(s string) (int64, error) {
	if s == "" {
		return DefaultEphemeralSize, nil
	}
	orig, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", kib}, {"Mi", mib}, {"Gi", gib}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errorf(codes.InvalidArgument, "volume attribute %s=%q is not a positive size", ParamSize, orig)
	}
	return roundUp(n*mult, allocUnit), nil
}

// checkEphemeral validates an ephemeral NodePublishVolume and returns the
// volume's size.
func checkEphemeral(req *csi.NodePublishVolumeRequest) (int64, error) {
	id := req.GetVolumeId()
	if len(id) > maxEphemeralIDLen || !ephemeralIDRE.MatchString(id) {
		return 0, errorf(codes.InvalidArgument, "ephemeral volume ID %q must be up to %d letters, digits, '.', '_' or '-'", id, maxEphemeralIDLen)
	}
	if req.GetVolumeCapability().GetBlock() != nil {
		return 0, errorf(codes.InvalidArgument, "an ephemeral volume is a directory: block access is not supported")
	}
	if fs := req.GetVolumeCapability().GetMount().GetFsType(); fs != "" {
		return 0, errorf(codes.InvalidArgument, "an ephemeral volume is a directory: fsType %q is not supported", fs)
	}
	if req.GetStagingTargetPath() != "" {
		return 0, errorf(codes.InvalidArgument, "an ephemeral volume is never staged")
	}
	for k := range req.GetVolumeContext() {
		if k != ParamSize && !strings.HasPrefix(k, k8sParamPrefix) {
			return 0, errorf(codes.InvalidArgument, "unknown volume attribute %q of an ephemeral volume (only %q)", k, ParamSize)
		}
	}
	return ephemeralSize(req.GetVolumeContext()[ParamSize])
}

// publishEphemeral is NodePublishVolume of an ephemeral volume: the
// volume is created on the first call (a directory volume of the size
// asked for, recorded Creating before the pool is touched and Ready
// after, as CreateVolume does) and its directory bind mounted on the
// target. A repeated call finds the record and the mount and does
// nothing more; one after a crash finishes what was left. The caller
// holds the volume's lock.
func (d *Driver) publishEphemeral(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	size, err := checkEphemeral(req)
	if err != nil {
		return nil, err
	}
	if err := d.checkNodePath(target, id); err != nil {
		return nil, err
	}
	v, err := d.store.GetVolume(id)
	switch {
	case errors.Is(err, state.ErrNotFound):
		if n := d.countVolumes(func(o *state.Volume) bool { return len(o.Targets) > 0 }); int64(n) >= d.cfg.MaxVolumesPerNode {
			return nil, errorf(codes.ResourceExhausted, "%d volumes are published on this node, the maximum", n)
		}
		v = state.Volume{ID: id, Name: id, Kind: state.KindDir, Phase: state.Creating, CapacityBytes: size,
			CreatedAt: time.Now().UTC(), Parameters: map[string]string{ephemeralKey: "true"}}
		if err := d.reserve(&v); err != nil {
			return nil, err
		}
		d.logger(ctx).Info("creating ephemeral volume", "volume", id, "bytes", size)
	case err != nil:
		return nil, hostError(err, "read volume %s", id)
	case !isEphemeral(&v):
		return nil, errorf(codes.AlreadyExists, "volume %s exists and is not an ephemeral volume", id)
	case v.Phase == state.Deleting:
		return nil, errorf(codes.Aborted, "ephemeral volume %s is being deleted", id)
	case v.CapacityBytes != size:
		return nil, errorf(codes.AlreadyExists, "ephemeral volume %s exists with %d bytes", id, v.CapacityBytes)
	}
	if v.Phase == state.Creating {
		if err := d.build(ctx, &v); err != nil {
			d.rollbackVolume(ctx, &v)
			return nil, err
		}
		v.Phase = state.Ready
		if err := d.store.PutVolume(v); err != nil {
			return nil, hostError(err, "record volume %s", id)
		}
	}
	t := state.Target{ReadOnly: req.GetReadonly(), AccessMode: int32(req.GetVolumeCapability().GetAccessMode().GetMode()),
		MountFlags: req.GetVolumeCapability().GetMount().GetMountFlags()}
	err = d.publishAt(ctx, &v, d.pool.DirPath(id), target, t, func() error {
		if len(v.Targets) > 0 {
			return errorf(codes.FailedPrecondition, "ephemeral volume %s is already published elsewhere", id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// unpublishedEphemeral deletes an ephemeral volume once nothing publishes
// it (NodeUnpublishVolume has unmounted it): Deleting is recorded first,
// so a crash half way is finished at the next start. The caller holds the
// volume's lock.
func (d *Driver) unpublishedEphemeral(ctx context.Context, v *state.Volume) error {
	if !isEphemeral(v) || len(v.Targets) > 0 {
		return nil
	}
	if err := d.deleteVolume(ctx, v); err != nil {
		return err
	}
	d.logger(ctx).Info("ephemeral volume deleted", "volume", v.ID)
	return nil
}
