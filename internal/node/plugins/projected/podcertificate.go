package projected

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins/atomicwriter"
)

// podCertificate is the payload of a podCertificate source: the key, the
// chain, or both in one file (key first), at the paths the source names.
func (p *Plugin) podCertificate(ctx context.Context, volumeName string, pod *corev1.Pod, sourceIndex int, src *corev1.PodCertificateProjection, mode int32, fsUser *int64) (atomicwriter.Payload, error) {
	key, chain, err := p.cfg.Certificates.Credentials(ctx, volumeName, pod, sourceIndex, src)
	if err != nil {
		return nil, err
	}
	out := atomicwriter.Payload{}
	if src.CredentialBundlePath != "" {
		bundle := append(append([]byte{}, key...), chain...)
		out[src.CredentialBundlePath] = atomicwriter.File{Data: bundle, Mode: mode, FsUser: fsUser}
	}
	if src.KeyPath != "" {
		out[src.KeyPath] = atomicwriter.File{Data: key, Mode: mode, FsUser: fsUser}
	}
	if src.CertificateChainPath != "" {
		out[src.CertificateChainPath] = atomicwriter.File{Data: chain, Mode: mode, FsUser: fsUser}
	}
	return out, nil
}
