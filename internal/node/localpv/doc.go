// Package localpv is the local static provisioner each node agent runs
// for its own node (--local-discovery-dir, --local-storage-class): the
// role of upstream's sig-storage-local-static-provisioner, in process.
//
// Discovery. Every mount point directly under the discovery dir (from
// the mount table; a directory that is not a mount point is ignored)
// becomes a `local` PV named local-pv-<hex FNV-1a 32 of the mount
// point's name, the node and the class> (upstream's name, stable across
// restarts), with the capacity of its filesystem (statfs, rounded down to
// whole GiB or MiB as upstream), spec.local.path, nodeAffinity
// kubernetes.io/hostname In [node], the class, Filesystem, ReadWriteOnce,
// the class's reclaim policy (Delete unless the class says Retain) and
// pv.kubernetes.io/provisioned-by: local-volume-provisioner-<node>-<node
// UID>, as upstream. That annotation is what makes the PV controller
// leave a released Delete PV to this provisioner (a provisioned-by name
// it does not know and that does not start with kubernetes.io/ is an
// external provisioner's) instead of marking it Failed. A pass runs on
// every change in the directory (fsnotify), on every PV change, and
// every Config.Rescan (5 s): mounting does not touch the directory's
// inotify watch, so a new mount point is seen within that interval.
//
// Reclaim. A Released PV of this node whose mount point is there is
// scrubbed (Scrub: everything inside removed through file descriptors,
// never following a symbolic link, never crossing into another mount)
// and then deleted; the next pass makes it again as a fresh Available PV,
// as upstream. It is not touched while in use: its filesystem mounted
// anywhere else (a pod's bind mount not yet torn down), named in the
// Node's status.volumesInUse, or its claim named by a pod that has not
// finished. Events on the PV: VolumeCleanup, VolumeDeleted,
// VolumeFailedDelete (upstream's reason; retried next pass), VolumeInUse.
//
//	mount point   PV                        action
//	-----------   ------------------------  ------------------------------
//	there         none                      create
//	there         Released, Delete policy   scrub, delete (unless in use)
//	gone          no claimRef               delete, VolumeDeleted event
//	gone          claimRef set              VolumeMissing warning, kept
//
// Identity. A node's own credential may not create PVs (Node
// authorizer), so the provisioner runs with its own:
// system:volplane:local-provisioner (package controlplane), allowed PV
// get/list/watch/create/delete, storageclass get, event create/patch,
// node get and pod list, nothing else.
//
// The class: `up` makes it (bootstrap.EnsureLocalClass); the
// provisioner may only read classes, so on a joining node the cluster's
// admin makes it, and until then the PVs' reclaim policy is Delete.
//
// Departures from upstream: block devices are not discovered; no
// cleanup jobs; one class per node; the events VolumeCleanup,
// VolumeDeleted, VolumeInUse and VolumeMissing are volplane's
// (sig-storage-local-static-provisioner's deleter cleans and deletes a
// filesystem volume without an event, and warns only on failure,
// VolumeFailedDelete "Error cleaning PV ...").
//
// It may call: the API through Config.Client; hostops.Host.Mounts;
// statfs and the descriptor-based removal in Scrub.
package localpv
