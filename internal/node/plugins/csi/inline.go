package csi

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"volplane/internal/csi/client"
	"volplane/internal/node/plugins"
)

// inline returns the pod's CSI inline (ephemeral) volume source of spec,
// nil for a PersistentVolume.
func inline(spec *plugins.Spec) *corev1.CSIVolumeSource {
	if spec.PV != nil || spec.Volume == nil {
		return nil
	}
	return spec.Volume.CSI
}

// specDriver is the CSI driver of spec, a PV or an inline volume.
func specDriver(spec *plugins.Spec) string {
	if src := inline(spec); src != nil {
		return src.Driver
	}
	if spec.PV != nil && spec.PV.Spec.CSI != nil {
		return spec.PV.Spec.CSI.Driver
	}
	return ""
}

// ephemeralHandle is the volume handle of an inline volume, as upstream
// makes it: "csi-" and the hex sha256 of the pod UID followed by the
// volume's name.
func ephemeralHandle(podUID, volumeName string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(podUID+volumeName)))
}

// supportsLifecycleMode checks, as upstream does before every publish,
// that the driver's CSIDriver lists mode: without a CSIDriver object only
// Persistent volumes are allowed.
func supportsLifecycleMode(obj *storagev1.CSIDriver, driver string, mode storagev1.VolumeLifecycleMode) error {
	switch {
	case obj == nil && mode == storagev1.VolumeLifecyclePersistent:
		return nil
	case obj == nil:
		return fmt.Errorf("volume mode %q not supported by driver %s (no CSIDriver object)", mode, driver)
	case slices.Contains(obj.Spec.VolumeLifecycleModes, mode):
		return nil
	}
	// A CSIDriver that lists no mode has upstream's default, Persistent.
	if len(obj.Spec.VolumeLifecycleModes) == 0 && mode == storagev1.VolumeLifecyclePersistent {
		return nil
	}
	return fmt.Errorf("volume mode %q not supported by driver %s (only supports %q)", mode, driver, obj.Spec.VolumeLifecycleModes)
}

// setUpInline publishes a CSI inline volume at <args.Dir>/mount (through
// publish): no attachment and no staging, NodePublishVolume alone with
// the handle ephemeralHandle makes, the source's volumeAttributes (plus
// the pod's identity with ephemeral "true" when the CSIDriver has
// podInfoOnMount), fsType and readOnly, the nodePublishSecretRef secret
// from the pod's namespace, and the SINGLE_NODE_WRITER capability
// upstream gives inline volumes. The driver's CSIDriver must list the
// Ephemeral lifecycle mode.
func (p *Plugin) setUpInline(ctx context.Context, args plugins.SetUpArgs, src *corev1.CSIVolumeSource) error {
	return p.publish(ctx, args, src.Driver, storagev1.VolumeLifecycleEphemeral,
		func(obj *storagev1.CSIDriver, caps client.NodeCapabilities) (publication, error) {
			handle := ephemeralHandle(string(args.Pod.UID), args.Spec.Name)
			cp := client.Capability{AccessMode: client.SingleNodeWriter}
			if caps.SingleNodeMultiWriter {
				cp.AccessMode = client.SingleNodeMultiWriter
			}
			if src.FSType != nil {
				cp.FSType = *src.FSType
			}
			readOnly := src.ReadOnly != nil && *src.ReadOnly
			policy := fsGroupPolicy(obj)
			pub := publication{
				req: client.NodePublishRequest{VolumeID: handle, Capability: cp, ReadOnly: readOnly},
				data: volData{SpecVolID: args.Spec.Name, VolumeHandle: handle, DriverName: src.Driver,
					NodeName: p.host.NodeName, VolumeLifecycleMode: string(storagev1.VolumeLifecycleEphemeral)},
				attributes: src.VolumeAttributes,
				fsGroup: args.FSGroup != nil && !readOnly && (policy == storagev1.FileFSGroupPolicy ||
					policy == storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy && cp.FSType != ""),
			}
			if ref := src.NodePublishSecretRef; ref != nil {
				pub.secretRef = &corev1.SecretReference{Name: ref.Name, Namespace: args.Pod.Namespace}
			}
			return pub, nil
		})
}
