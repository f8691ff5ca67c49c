// Package csidriver is local.csi.volplane.io, the CSI driver volplane
// ships: `volplane csi` runs it alone, `volplane up` in process. It serves
// Identity, Controller, Node and GroupController on one unix socket and
// keeps volumes in a pool directory on this node.
//
// Volumes. A directory volume ("type: dir", the default) is a btrfs
// subvolume limited by a qgroup, or a project-quota directory on XFS/ext4
// when the kernel enforces project quotas; the pool package decides at the
// first start and records the choice, and falls back to a sparse btrfs
// image when the pool's filesystem offers neither. A block volume ("type:
// block", or any raw block capability) is a sparse file on a loop device,
// formatted ext4 or xfs ("fsType") at first staging for Filesystem access,
// handed raw to Block access. Capacity is enforced, and reserved in full
// when a volume is created: GetCapacity and CreateVolume never promise
// bytes the pool has already promised.
//
// Files. One per service: identity.go, controller.go (create, delete,
// publish) with controller_info.go (list, validate, capacity, expand,
// modify), snapshots.go, groupcontroller.go, node.go (stage) with
// node_publish.go, ephemeral.go and node_stats.go (stats, node expansion), health.go;
// validate.go holds the pure checks of requests, nodepaths.go the checks
// of paths the CO hands the node service, recover.go what happens at
// start, release.go the clean stop (an image pool is unmounted only when
// no volume is staged), interceptor.go and server.go the gRPC side.
//
// Ephemeral (CSI inline) volumes (ephemeral.go). A NodePublishVolume whose
// volume context says csi.storage.k8s.io/ephemeral "true" (the CSIDriver
// has podInfoOnMount) creates a directory volume with the CO's volume ID
// (letters, digits, '.', '_', '-'; at most 128) on this node and binds it
// on the target; no stage, no ControllerPublish. Its size is the volume
// attribute "size" (bytes or a quantity such as 64Mi or 1G), default
// DefaultEphemeralSize (100 MiB); any other attribute outside
// csi.storage.k8s.io/ is InvalidArgument, as are block access, an fsType
// and a staging path. NodeUnpublishVolume deletes it once no target is
// left. Both are idempotent and go through the record's phases: Creating
// before the pool is touched, Ready after, Deleting before the data is
// removed; a crash anywhere is finished by the next call or at start
// (recover.go). Once deleted, a repeated unpublish answers NotFound, as
// for any unknown volume. The ephemeral volumes count against
// MaxVolumesPerNode and the pool's capacity like the others.
//
// State. Every object is a record in state.Store, written before the RPC
// answers. Records carry a phase: Creating is written before the pool is
// touched and Ready after, Deleting before anything is removed. At start
// (recover.go) Deleting records are finished, Creating ones undone, loop
// devices of staged block volumes attached again and vanished staging
// mounts remounted; publications whose mounts are gone are forgotten for
// the CO to redo. Pool data no record claims is reported, never deleted.
//
// Concurrency. One operation at a time per volume, snapshot and group (a
// keyed lock); name locks are taken before ID locks. Creating a volume
// checks and reserves capacity under one mutex.
//
// Errors. Every error is born with its gRPC code (errorf, hostError) and
// wraps its cause with %w. Handlers never log; the interceptor logs each
// call once, with the request's csi_secret fields stripped, turns panics
// and code-less errors into Internal.
//
// Snapshots are independent copies that outlive their source: read-only
// btrfs snapshots of directory volumes, reflinks of block volumes' files
// taken with the staged filesystem frozen. A group snapshot freezes every
// staged block volume of the group, then copies all members at once, then
// thaws: one point in time for block volumes; directory members are btrfs
// snapshots started together.
//
// This package calls the pool, the state store and, for the node side,
// hostops.Host. It never calls Kubernetes code.
package csidriver
