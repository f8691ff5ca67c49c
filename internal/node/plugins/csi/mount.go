package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"volplane/internal/csi/client"
	"volplane/internal/logging"
	"volplane/internal/node/plugins"
)

// The volume context keys a driver with podInfoOnMount: true gets, as
// upstream sets them.
const (
	keyPodName        = "csi.storage.k8s.io/pod.name"
	keyPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	keyPodUID         = "csi.storage.k8s.io/pod.uid"
	keyServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	keyEphemeral      = "csi.storage.k8s.io/ephemeral"
)

// SetUp publishes the volume at <args.Dir>/mount (NodePublishVolume),
// from the staging path when the driver stages, with the attachment's
// publish context, the PV's volume attributes (and the pod's identity
// when the CSIDriver asks for it), the capability of the PV's access
// modes, fsType and mount options, read-only and the node-publish
// secret. vol_data.json goes into args.Dir first. The pod's fsGroup is
// then applied as the CSIDriver's fsGroupPolicy says, by the driver
// itself when it has VOLUME_MOUNT_GROUP. Calling it again is safe:
// NodePublishVolume is idempotent by the spec.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	spec := args.Spec
	if in := inline(spec); in != nil {
		return p.setUpInline(ctx, args, in)
	}
	src, err := source(spec)
	if err != nil {
		return err
	}
	c, caps, err := p.driver(ctx, src.Driver)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: %w", err)
	}
	obj, err := p.driverObject(ctx, src.Driver)
	if err != nil {
		return err
	}
	if err := supportsLifecycleMode(obj, src.Driver, storagev1.VolumeLifecyclePersistent); err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.SetupAt failed to check volume lifecycle mode: %w", err)
	}
	pubCtx, attachID, err := p.publishContext(ctx, spec, src)
	if err != nil {
		return err
	}
	if err := writeVolData(args.Dir, volData{
		SpecVolID: spec.PV.Name, VolumeHandle: src.VolumeHandle, DriverName: src.Driver,
		NodeName: p.host.NodeName, AttachmentID: attachID, VolumeLifecycleMode: "Persistent",
	}); err != nil {
		return err
	}
	cp, err := capability(spec, caps)
	if err != nil {
		return err
	}
	fsGroup := supportsFSGroup(spec, args.FSGroup, fsGroupPolicy(obj))
	if fsGroup && caps.VolumeMountGroup {
		cp.VolumeMountGroup = strconv.FormatInt(*args.FSGroup, 10)
	}
	secrets, err := p.secrets(ctx, src.NodePublishSecretRef)
	if err != nil {
		return err
	}
	tokens, err := p.tokens(ctx, obj, args.Pod)
	if err != nil {
		return err
	}
	req := &client.NodePublishRequest{
		VolumeID:       src.VolumeHandle,
		PublishContext: pubCtx,
		TargetPath:     p.ContentDir(args.Dir),
		Capability:     cp,
		ReadOnly:       spec.ReadOnly,
		Secrets:        secrets,
		Context:        volumeContext(src, obj, args.Pod, tokens),
	}
	if caps.StageUnstage {
		req.StagingPath = p.deviceMountPath(src)
	}
	if err := c.NodePublishVolume(ctx, req); err != nil {
		return err
	}
	p.trackPublished(args, published{driver: src.Driver, volumeID: src.VolumeHandle, target: req.TargetPath, staging: req.StagingPath})
	if fsGroup && !caps.VolumeMountGroup {
		return plugins.SetVolumeOwnership(req.TargetPath, args.FSGroup, args.FSGroupChangePolicy, false)
	}
	return nil
}

// TearDown unpublishes the volume from <dir>/mount (NodeUnpublishVolume)
// and removes it, vol_data.json and dir. The driver and volume come from
// vol_data.json; without it an unmounted <dir>/mount is just removed and
// a mounted one is an error. A driver that answers NotFound (its volume
// is gone, deleted while the driver was down, or an ephemeral volume
// deleted by an unpublish whose answer was lost) has nothing published
// there: when <dir>/mount is no mount point that is done, so teardown
// converges instead of failing forever; a mount still there keeps the
// error.
func (p *Plugin) TearDown(ctx context.Context, dir string) error {
	target := p.ContentDir(dir)
	data, err := readVolData(dir)
	if errors.Is(err, os.ErrNotExist) {
		return p.removeMountDir(target)
	}
	if err != nil {
		return err
	}
	c, _, err := p.driver(ctx, data.DriverName)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: Unmounter.TearDownAt failed to get CSI client: %w", err)
	}
	if err := c.NodeUnpublishVolume(ctx, data.VolumeHandle, target); err != nil {
		if client.Code(err) != codes.NotFound {
			return err
		}
		if mounted, merr := p.host.Ops.IsMountPoint(target); merr != nil || mounted {
			return err
		}
		logging.FromContext(ctx).Info("csi driver does not know the volume and nothing is mounted; unpublished",
			"driver", data.DriverName, "volume", data.VolumeHandle, "target", target)
	}
	p.untrack(dir)
	return p.removeMountDir(target)
}

// volumeContext is the PV's volume attributes, the service account
// tokens JSON when there is one and, when the CSIDriver has
// podInfoOnMount: true, the pod's name, namespace, UID and service
// account, with ephemeral "false".
func volumeContext(src *corev1.CSIPersistentVolumeSource, obj *storagev1.CSIDriver, pod *corev1.Pod, tokens string) map[string]string {
	out := maps.Clone(src.VolumeAttributes)
	if tokens != "" {
		if out == nil {
			out = map[string]string{}
		}
		out[keyTokens] = tokens
	}
	if obj == nil || obj.Spec.PodInfoOnMount == nil || !*obj.Spec.PodInfoOnMount {
		return out
	}
	if out == nil {
		out = map[string]string{}
	}
	out[keyPodName] = pod.Name
	out[keyPodNamespace] = pod.Namespace
	out[keyPodUID] = string(pod.UID)
	out[keyServiceAccount] = pod.Spec.ServiceAccountName
	out[keyEphemeral] = "false"
	return out
}

// fsGroupPolicy is the CSIDriver's fsGroupPolicy; without an object or a
// policy, ReadWriteOnceWithFSType, upstream's default.
func fsGroupPolicy(obj *storagev1.CSIDriver) storagev1.FSGroupPolicy {
	if obj == nil || obj.Spec.FSGroupPolicy == nil {
		return storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
	}
	return *obj.Spec.FSGroupPolicy
}

// supportsFSGroup says whether the pod's fsGroup applies to the volume,
// as upstream decides: never for read-only volumes or policy None,
// always for File, and for ReadWriteOnceWithFSType only when the PV has
// an fsType and offers ReadWriteOnce.
func supportsFSGroup(spec *plugins.Spec, fsGroup *int64, policy storagev1.FSGroupPolicy) bool {
	switch {
	case fsGroup == nil, spec.ReadOnly, policy == storagev1.NoneFSGroupPolicy:
		return false
	case policy == storagev1.FileFSGroupPolicy:
		return true
	}
	return spec.PV.Spec.CSI.FSType != "" && slices.Contains(spec.PV.Spec.AccessModes, corev1.ReadWriteOnce)
}
