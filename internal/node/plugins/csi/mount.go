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
// NodePublishVolume is idempotent by the spec. An inline volume is
// setUpInline's; both go through publish.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	spec := args.Spec
	if in := inline(spec); in != nil {
		return p.setUpInline(ctx, args, in)
	}
	src, err := source(spec)
	if err != nil {
		return err
	}
	return p.publish(ctx, args, src.Driver, storagev1.VolumeLifecyclePersistent,
		func(obj *storagev1.CSIDriver, caps client.NodeCapabilities) (publication, error) {
			pubCtx, attachID, err := p.publishContext(ctx, spec, src)
			if err != nil {
				return publication{}, err
			}
			cp, err := capability(spec, caps)
			if err != nil {
				return publication{}, err
			}
			pub := publication{
				req: client.NodePublishRequest{VolumeID: src.VolumeHandle, PublishContext: pubCtx, Capability: cp,
					ReadOnly: spec.ReadOnly},
				data: volData{SpecVolID: spec.PV.Name, VolumeHandle: src.VolumeHandle, DriverName: src.Driver,
					NodeName: p.host.NodeName, AttachmentID: attachID, VolumeLifecycleMode: string(storagev1.VolumeLifecyclePersistent)},
				attributes: src.VolumeAttributes,
				secretRef:  src.NodePublishSecretRef,
				fsGroup:    supportsFSGroup(spec, args.FSGroup, fsGroupPolicy(obj)),
			}
			if caps.StageUnstage {
				pub.req.StagingPath = p.deviceMountPath(src)
			}
			return pub, nil
		})
}

// publication is what SetUp publishes of a PV or an inline volume: the
// request (without target, secrets and volume context), what
// vol_data.json records, the volume attributes, the node-publish secret
// and whether the pod's fsGroup applies to the volume.
type publication struct {
	req        client.NodePublishRequest
	data       volData
	attributes map[string]string
	secretRef  *corev1.SecretReference
	fsGroup    bool
}

// publish is SetUp of a volume of driver in lifecycle mode, a PV's or an
// inline volume's: the driver must be registered and its CSIDriver must
// list mode; prepare, given the CSIDriver (nil without one) and the
// driver's Node capabilities, says what differs. Then vol_data.json is
// written, the secret read, the tokens requested, the volume context
// made (the attributes, tokens and, with podInfoOnMount, the pod's keys,
// ephemeral "true" for an inline volume), NodePublishVolume called at
// <args.Dir>/mount, the publication tracked for metrics and republishing,
// and the fsGroup applied.
func (p *Plugin) publish(ctx context.Context, args plugins.SetUpArgs, driver string, mode storagev1.VolumeLifecycleMode,
	prepare func(*storagev1.CSIDriver, client.NodeCapabilities) (publication, error)) error {
	c, caps, err := p.driver(ctx, driver)
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: %w", err)
	}
	obj, err := p.driverObject(ctx, driver)
	if err != nil {
		return err
	}
	if err := supportsLifecycleMode(obj, driver, mode); err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.SetupAt failed to check volume lifecycle mode: %w", err)
	}
	pub, err := prepare(obj, caps)
	if err != nil {
		return err
	}
	if err := writeVolData(args.Dir, pub.data); err != nil {
		return err
	}
	req := &pub.req
	req.TargetPath = p.ContentDir(args.Dir)
	if pub.fsGroup && caps.VolumeMountGroup {
		req.Capability.VolumeMountGroup = strconv.FormatInt(*args.FSGroup, 10)
	}
	if req.Secrets, err = p.secrets(ctx, pub.secretRef); err != nil {
		return err
	}
	tokens, err := p.tokens(ctx, obj, args.Pod)
	if err != nil {
		return err
	}
	req.Context = volumeContext(&corev1.CSIPersistentVolumeSource{VolumeAttributes: pub.attributes}, obj, args.Pod, tokens)
	if _, ok := req.Context[keyEphemeral]; ok && mode == storagev1.VolumeLifecycleEphemeral {
		req.Context[keyEphemeral] = "true"
	}
	if err := c.NodePublishVolume(ctx, req); err != nil {
		return err
	}
	p.trackPublished(args, published{driver: driver, volumeID: req.VolumeID, target: req.TargetPath, staging: req.StagingPath})
	if pub.fsGroup && !caps.VolumeMountGroup {
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
