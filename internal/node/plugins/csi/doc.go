// Package csi is the kubernetes.io/csi volume plugin of the node agent:
// PersistentVolumes with spec.csi, served by whichever CSI driver is
// registered on this node under the PV's driver name (package
// csidrivers, filled by plugin registration). One gRPC client is kept per
// driver endpoint, closed when no registered driver uses the endpoint any
// more; the driver's Node capabilities are asked at each operation, as
// upstream does.
//
// The flow, with upstream's paths and names:
//
//   - VolumeName is kubernetes.io/csi/<driver>^<volumeHandle>, the name the
//     attach/detach controller writes into the Node's
//     status.volumesAttached. Attachable is true unless the driver's
//     CSIDriver object (read with the node's Get, reused for
//     Config.DriverInfoTTL) says attachRequired: false; no object means
//     attach. Before staging and publishing an attachable volume the
//     plugin gets its VolumeAttachment (csi-<sha256(handle+driver+node)>;
//     a node may only get them), requires status.attached and no
//     deletion timestamp, turns an attachError into the error, and uses
//     status.attachmentMetadata as the publish context; an attachment
//     not complete is a plugins.AttachError worded as upstream's csi
//     attacher's WaitForAttach ("volume H is not attached for volume
//     attachment csi-...", "volume attachment is being deleted", the
//     attach error's message).
//   - MountDevice (the volume manager's global mount) writes
//     <root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/vol_data.json,
//     then calls NodeStageVolume at .../globalmount when the driver has
//     STAGE_UNSTAGE_VOLUME (nothing otherwise), with the nodeStageSecretRef
//     secret. UnmountDevice reads vol_data.json, calls NodeUnstageVolume and
//     removes globalmount, vol_data.json and their directory.
//   - SetUp writes vol_data.json into the pod volume directory
//     <root>/pods/<uid>/volumes/kubernetes.io~csi/<pv name>, then calls
//     NodePublishVolume at <dir>/mount, which is what the runtime binds
//     (ContentDir, plugins.ContentDirPlugin). The volume context is the
//     PV's volumeAttributes plus, with podInfoOnMount, the
//     csi.storage.k8s.io/pod.name, pod.namespace, pod.uid,
//     serviceAccount.name and ephemeral ("false") keys, and, when the
//     CSIDriver lists tokenRequests, csi.storage.k8s.io/serviceAccount.tokens:
//     the JSON {"<audience>": {"token", "expirationTimestamp"}} of tokens of
//     the pod's service account bound to the pod, requested as the node
//     (tokens.go); secrets come from nodePublishSecretRef. The pod's fsGroup follows the CSIDriver's
//     fsGroupPolicy (File: always; ReadWriteOnceWithFSType, the default:
//     when the PV has an fsType and offers ReadWriteOnce; None: never;
//     never for read-only volumes): passed as volume_mount_group to a
//     driver with VOLUME_MOUNT_GROUP, otherwise applied to the published
//     tree with plugins.SetVolumeOwnership. TearDown reads vol_data.json,
//     calls NodeUnpublishVolume and removes <dir>/mount, vol_data.json
//     and dir.
//
// The capability is kube.PublishCapability of the PV (the one the
// attacher uses for ControllerPublish), with SINGLE_NODE_MULTI_WRITER for
// ReadWriteOnce when the driver's Node service has that capability, so
// two pods of one node can publish the same RWO volume.
//
// Errors keep the driver's gRPC status (package client). A driver not
// registered yet is upstream's "driver name X not found in the list of
// registered CSI drivers", which the volume manager retries with backoff;
// when the driver registers, the plugin asks the volume manager to retry
// that driver's volumes at once (plugins.Host.Retry).
// Secrets are read with the node's credential and never logged.
//
// Restarts: the volume manager's records bring volumes back as uncertain
// and call MountDevice and SetUp again; both only repeat idempotent CSI
// calls (the built-in driver keeps a mount it already made at the same
// path with the same arguments). vol_data.json lets UnmountDevice and
// TearDown, which get a path only, find the driver and the volume. A
// staging that is no mount point (raw block, a driver without
// STAGE_UNSTAGE) comes back as an uncertain device, so UnmountDevice
// still runs when no pod wants the volume.
//
// Metrics: Collector gives upstream's kubelet_volume_stats_* gauges
// (capacity, available, used bytes; inodes, free, used; labelled
// namespace and persistentvolumeclaim) of the claims this plugin has
// published, read with NodeGetVolumeStats at each scrape from drivers
// with GET_VOLUME_STATS. After a restart a volume counts again once the
// volume manager has called SetUp for it.
//
// Raw block (volumeMode: Block, plugins.PodBlockMapper), laid out as
// upstream's CSI block mapper: MountDevice writes vol_data.json into
// <root>/plugins/kubernetes.io/csi/volumeDevices/<pv>/data and stages at
// .../volumeDevices/staging/<pv> with a block capability; MapPodDevice
// publishes at .../volumeDevices/publish/<pv>/<pod uid> (a file the
// driver binds the device on), which the volume manager binds and links
// into the pod as for any block volume; UnmapPodDevice unpublishes it and
// UnmountDevice unstages after the last pod.
//
// Republishing: for a driver whose CSIDriver says requiresRepublish the
// plugin is a Remounter (RequiresRemount) and asks the volume manager,
// every Config.RepublishPeriod (a minute, upstream's pod sync), to set its
// pods' volumes up again, PVs and inline volumes alike, which publishes
// them again with fresh tokens.
//
// CSI inline (ephemeral) volumes (a pod's volumes[].csi, inline.go), as
// upstream's csi plugin serves them: allowed only when the driver's
// CSIDriver lists the Ephemeral volumeLifecycleMode (no CSIDriver object:
// Persistent only; the FailedMount event then says `volume mode
// "Ephemeral" not supported by driver X (only supports [...])`, and a PV
// of a driver that lists only Ephemeral is refused likewise). The volume
// handle is "csi-" and the hex sha256 of the pod UID followed by the
// volume's name; the unique volume name
// kubernetes.io/csi/<pod uid>-<volume name>. No VolumeAttachment, no
// NodeStageVolume (CanDeviceMount is false, so the volume manager skips
// MountDevice; the attach/detach controller only attaches claims): SetUp,
// through the path a PV's takes (publish in mount.go, given what differs),
// writes vol_data.json (volumeLifecycleMode Ephemeral) and calls
// NodePublishVolume at <dir>/mount with the volumeAttributes, fsType,
// readOnly, the nodePublishSecretRef secret of the pod's namespace, the
// SINGLE_NODE_WRITER capability (SINGLE_NODE_MULTI_WRITER when the
// driver has it) and, with podInfoOnMount, the pod's keys with
// csi.storage.k8s.io/ephemeral "true" (upstream sends that key only with
// podInfoOnMount, and so does volplane). TearDown is the same
// NodeUnpublishVolume from vol_data.json as for a PV, so it also works
// after a restart.
//
// Teardown when the driver's volume is gone: NodeUnpublishVolume
// answering NotFound (the volume was deleted while the driver was
// stopped, or an ephemeral volume was deleted by an unpublish whose
// answer was lost) counts as unpublished when <dir>/mount is no mount
// point, so TearDown converges once the driver answers; with a mount
// still there the error stands and is retried.
//
// Attachment limit (exhausted.go, KEP-4876): VerifyExhaustedResource, which
// the volume manager calls for a volume not attached in time, is true when
// the driver's CSIDriver sets nodeAllocatableUpdatePeriodSeconds and the
// VolumeAttachment's attachError.errorCode is ResourceExhausted; the
// plugin then refreshes the driver's CSINode allocatable count at once
// (Config.RefreshAllocatable, the plugin watcher's). The volume manager
// then ends the pod's wait with a VolumeAttachLimitExceededError and the
// pod worker rejects the pod as upstream's kubelet does (Failed, reason
// VolumeAttachmentLimitExceeded), so that its controller makes one the
// scheduler places elsewhere.
//
// Not yet: abnormal volume conditions as events (this CSI spec module has
// no volume_condition field). volume_mount_group is passed to
// NodePublishVolume only, not to NodeStageVolume (MountDevice does not
// get the pod's fsGroup).
//
// It may call: package client (the CSI Node service), package kube (CSI
// names, capabilities, secrets), the API as the node (CSIDriver,
// VolumeAttachment and Secret Get, TokenRequest), hostops.Host
// (IsMountPoint) and prometheus.
package csi
