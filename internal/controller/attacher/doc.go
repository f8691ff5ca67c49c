// Package attacher is the CSI attacher of one driver: upstream's
// external-attacher, run by `volplane csi-controller` and in process by
// `volplane up`/`server`.
//
// It owns the VolumeAttachments whose spec.attacher names its driver
// (the attach/detach controller creates and deletes them). To attach it
// puts its finalizer external-attacher/<driver> (named as upstream's:
// local-csi-volplane-io; the older external-attacher/local.csi.volplane.io
// is removed wherever found) and the node ID
// (annotation csi.alpha.kubernetes.io/node-id, from the node's CSINode)
// on the VolumeAttachment, its finalizer on the PV, then calls
// ControllerPublishVolume with the PV's handle, one capability from its
// access modes, readOnly, the controller-publish secret and the volume
// attributes, and writes status.attached with the publish context as
// status.attachmentMetadata. A failure is written to status.attachError
// with the driver's gRPC status as message and retried with backoff. On
// deletion it calls ControllerUnpublishVolume with the recorded node ID
// (so a detach works after the node and its CSINode are gone), clears the
// status (a failure goes to status.detachError), removes its finalizer,
// and removes the PV's finalizer once no VolumeAttachment of the driver
// names the PV. A driver without PUBLISH_UNPUBLISH_VOLUME is attached and
// detached without calls.
//
// Every step is idempotent, so a crash between ControllerPublish and the
// status write is finished by the next sync: ControllerPublish again (the
// spec makes it idempotent), then the status. The attacher emits no
// events (upstream's does not either); the attach/detach controller
// reports attach errors on the pods.
//
// The package calls client-go, the CSI client and internal/csi/kube.
package attacher
