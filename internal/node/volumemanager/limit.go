package volumemanager

import (
	"fmt"

	"volplane/internal/node/plugins"
)

// VolumeAttachmentLimitExceededReason is the reason (event and pod
// status) of a pod the agent rejects because its volumes could not be
// attached: the node has no attachment slot left. Upstream's.
const VolumeAttachmentLimitExceededReason = "VolumeAttachmentLimitExceeded"

// VolumeAttachLimitExceededError is what WaitForAttachAndMount returns
// when the wait timed out and an attachable volume not yet attached is
// one whose plugin says its attach failed because the node is out of
// attachment slots (VerifyExhaustedResource: a CSI ResourceExhausted
// answer). The agent rejects the pod for it, as upstream's kubelet does:
// no container starts, and the pod ends Failed with reason
// VolumeAttachmentLimitExceeded, so that its controller makes another
// one for the scheduler to place elsewhere.
type VolumeAttachLimitExceededError struct {
	UnmountedVolumes  []string
	UnattachedVolumes []string
	VolumesNotInDSW   []string
	OriginalError     error
}

// Error is upstream's text, word for word.
func (e *VolumeAttachLimitExceededError) Error() string {
	return fmt.Sprintf("Node has reached its volume attachment limit, rejecting pod. unmounted volumes=%v, unattached volumes=%v, failed to process volumes=%v: %v",
		e.UnmountedVolumes, e.UnattachedVolumes, e.VolumesNotInDSW, e.OriginalError)
}

// Unwrap gives the wait's own error (context.DeadlineExceeded).
func (e *VolumeAttachLimitExceededError) Unwrap() error { return e.OriginalError }

// exhaustVerifier is an attachable plugin that can tell whether a
// volume's attach failed for want of attachment slots on the node; the
// CSI plugin is one (KEP-4876, upstream's VerifyExhaustedResource).
type exhaustVerifier interface {
	VerifyExhaustedResource(spec *plugins.Spec) bool
}
