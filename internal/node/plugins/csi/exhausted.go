package csi

import (
	"context"

	"google.golang.org/grpc/codes"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/csi/kube"
	"volplane/internal/logging"
	"volplane/internal/node/plugins"
)

// VerifyExhaustedResource is upstream's answer to a volume that did not
// get attached in time: true when the driver's CSIDriver sets
// nodeAllocatableUpdatePeriodSeconds and the volume's VolumeAttachment
// failed with ResourceExhausted (attachError.errorCode), the node being
// out of attachment slots. It then refreshes the driver's CSINode
// allocatable count at once (Config.RefreshAllocatable), so that the
// scheduler stops sending such volumes here. Inline volumes, which are
// not attached, are false.
func (p *Plugin) VerifyExhaustedResource(spec *plugins.Spec) bool {
	src, err := source(spec)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CallTimeout)
	defer cancel()
	log := logging.FromContext(ctx).With("driver", src.Driver, "volumeHandle", src.VolumeHandle)
	obj, err := p.driverObject(ctx, src.Driver)
	if err != nil || obj == nil || obj.Spec.NodeAllocatableUpdatePeriodSeconds == nil || *obj.Spec.NodeAllocatableUpdatePeriodSeconds <= 0 {
		return false
	}
	name := kube.AttachmentName(src.VolumeHandle, src.Driver, p.host.NodeName)
	va, err := p.host.Client.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		log.Error("Failed to get volume attachment", "attachmentName", name, "err", err)
		return false
	}
	if !resourceExhausted(va) {
		return false
	}
	log.Info("Detected ResourceExhausted error for volume")
	if p.cfg.RefreshAllocatable != nil {
		if err := p.cfg.RefreshAllocatable(ctx, src.Driver); err != nil {
			log.Error("Failed to update CSIDriver", "err", err)
		}
	}
	return true
}

func resourceExhausted(va *storagev1.VolumeAttachment) bool {
	e := va.Status.AttachError
	return e != nil && e.ErrorCode != nil && *e.ErrorCode == int32(codes.ResourceExhausted)
}
