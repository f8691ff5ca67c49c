// Package attachdetach is volplane's attach/detach controller
// ("attachdetach"), upstream's of the same name for CSI volumes: it
// decides which volumes are attached to which node, and leaves the
// attaching itself to each driver's attacher through VolumeAttachment
// objects.
//
// Roles, as seed 001 and upstream name them, in one reconcile pass
// (reconcile.go), run on every change of the objects it watches and
// every ReconcilePeriod:
//
//   - populator / desired state of the world (desired.go): from the pods
//     scheduled to nodes whose Node carries
//     volumes.kubernetes.io/controller-managed-attach-detach: "true" and
//     that are not terminated, the CSI volumes behind their bound claims
//     (persistentVolumeClaim and generic ephemeral volumes), except those
//     of drivers whose CSIDriver says attachRequired: false (no CSIDriver
//     object means attach, as upstream). CSI inline (ephemeral) volumes
//     are never attached (upstream's CanAttach is false for them). Each
//     volume has upstream's unique name
//     kubernetes.io/csi/<driver>^<volumeHandle>.
//   - actual state of the world: the VolumeAttachments of PVs on managed
//     nodes (or nodes that are gone); attached when status.attached. It
//     lives in the API, so a restart loses nothing; only the time a
//     volume stopped being needed is in memory, and a restart starts that
//     clock again (the safe side).
//   - reconciler: detach first, then attach. An attachment no pod needs
//     is deleted only when its node no longer lists the volume in
//     status.volumesInUse, or the node has the
//     node.kubernetes.io/out-of-service NoExecute taint, or the node is not
//     Ready and MaxWaitForUnmountDuration (6 minutes) has passed since the
//     volume stopped being needed (off with DisableForceDetachOnTimeout,
//     upstream's --disable-force-detach-on-timeout). A needed volume
//     without one gets a VolumeAttachment named as upstream names it,
//     csi-<sha256(volumeHandle+driver+node)>, spec.attacher the driver,
//     source the PV. A volume whose PV allows neither ReadWriteMany nor
//     ReadOnlyMany that has an attachment on another node is not attached
//     again: the pods get upstream's FailedAttachVolume "Multi-Attach
//     error for volume "pv" Volume is already used by pod(s) a, b" (pods
//     of their namespace on the other nodes). An attach error in
//     status.attachError becomes FailedAttachVolume "AttachVolume.Attach
//     failed for volume ...", success SuccessfulAttachVolume, once each;
//     success only to the pods there when the controller sees the attach
//     complete (the node's volumesAttached does not list it yet), as
//     upstream emits it from its attach operation: a pod that comes to a
//     volume already attached, or a restart, brings none.
//   - node status updater: each managed node's status.volumesAttached is
//     the volumes attached to it minus those being detached, written with
//     a merge patch before any attachment is deleted, so the node never
//     sees a volume attached that is going away. Being detached: the
//     attachment has a deletion timestamp, or this controller deleted it
//     and its informer has not shown that yet (remembered by UID until
//     the informer no longer lists it), even when a pod needs the volume
//     again; a new attachment is made once the old one is gone.
//
// The package may call client-go and internal/csi/kube; it never calls a
// driver (that is the attacher's job) nor upstream's storage code.
package attachdetach
