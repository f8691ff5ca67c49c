// Package provisioner is the CSI provisioner of one driver: upstream's
// external-provisioner, run by `volplane csi-controller` next to any
// driver and in process by `volplane up`/`server` for named drivers.
//
// One path for every driver. The PV controller (package binder) marks a
// claim whose class names a provisioner that is not in process with the
// storage-provisioner annotations (volume.kubernetes.io/storage-provisioner
// and the beta key) and an ExternalProvisioning event; this controller
// takes the claims whose annotation names its driver. The built-in driver
// goes through the same path as a sidecar's driver.
//
// Provisioning (provision.go). CreateVolume is named pvc-<claim UID>, so
// it is idempotent: after a crash between CreateVolume and the PV write,
// the next sync asks again, gets the same volume, and writes the PV; no
// backend volume is orphaned and no second one made. The request carries
// the claim's size, one capability per access mode (block, or mount with
// the class's csi.storage.k8s.io/fstype and mount options), the class
// parameters without csi.storage.k8s.io/ keys, the provisioner secret
// (templates ${pv.name}, ${pvc.namespace}, ${pvc.name},
// ${pvc.annotations['KEY']}, as upstream), and accessibility requirements
// (topology.go) from the selected node's CSINode topology keys and labels
// for delayed binding, else the class's allowedTopologies, else every
// node's segment. The PV is pre-bound to the claim (claimRef with UID) and
// carries the CSI source with the volume context as attributes, the
// secret references of later phases, node affinity from the accessible
// topology, pv.kubernetes.io/provisioned-by, reclaim policy and mount
// options from the class, the deletion secret annotations, and for
// reclaim Delete the finalizer
// external-provisioner.volume.kubernetes.io/finalizer. The PV controller
// then binds it. Events are upstream's: Provisioning, ProvisioningSucceeded
// ("Successfully provisioned volume pvc-..."), ProvisioningFailed quoting
// the driver's gRPC status, with backoff. A ResourceExhausted answer for a
// claim with a selected node, from a driver with topology, removes the
// selected-node annotation so that the scheduler picks again (upstream's
// rule), as does a selected node that no longer exists. A PV that cannot
// be written after PVCreateRetries deletes the backend volume again
// (ProvisioningFailed "... Deleting the volume.").
//
// Data sources: a claim cloning a claim (dataSource kind
// PersistentVolumeClaim, same namespace and class, bound to a volume of
// this driver, not larger) gets a CreateVolume with that volume as
// content source. Other data sources (snapshots, populators) fail with
// ProvisioningFailed rather than yield an empty volume, until the
// snapshot controller lands.
//
// Deletion (delete.go). A Released PV with reclaim Delete that this
// driver provisioned: while a VolumeAttachment names it (drivers with
// ControllerPublish), VolumeFailedDelete "persistentvolume X is still
// attached to node N" and a retry, as upstream; then DeleteVolume with
// the recorded deletion secret,
// then the finalizer off and the PV deleted. A failure is a
// VolumeFailedDelete event on the PV and a retry with backoff. A deleted
// PV whose reclaim policy is not Delete only loses the finalizer.
//
// Departures from upstream: no csiProvisionerIdentity volume attribute
// (volplane does not use it), no extra-create-metadata parameters, and a
// claim deleted while its CreateVolume timed out is not chased with a
// DeleteVolume (upstream keeps such claims in memory, and loses them at a
// restart too).
//
// The package calls client-go, the CSI client (internal/csi/client) and
// internal/csi/kube; never upstream's storage code.
package provisioner
