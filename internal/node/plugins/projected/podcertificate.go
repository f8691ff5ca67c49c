package projected

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

// podCertificate is the payload of a podCertificate source.
func (p *Plugin) podCertificate(ctx context.Context, volumeName string, pod *corev1.Pod, sourceIndex int, src *corev1.PodCertificateProjection, mode int32, fsUser *int64) (atomicwriter.Payload, error) {
	return nil, fmt.Errorf("podCertificate projection (signer %q) is not supported by this node yet", src.SignerName)
}
