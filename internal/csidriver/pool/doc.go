// Package pool is where the built-in CSI driver keeps volumes:
//
//	<pool>/meta/            the driver's records (package state) and
//	                        pool.json, the mode chosen at the first start
//	<pool>/pool.img         the sparse btrfs image (image mode only)
//	<pool>/data/volumes/    directory volumes
//	<pool>/data/blocks/     block volumes' backing files (<id>.img)
//	<pool>/data/snapshots/  snapshots of both
//
// Modes. At the first start the pool looks at the filesystem holding the
// pool directory: btrfs gets subvolumes and qgroup limits (ModeBtrfs);
// XFS or ext4 whose kernel and mount enforce project quotas get project
// directories (ModeProjectQuota); anything else gets a sparse btrfs image
// of the configured size, attached to a loop device and mounted on data/
// (ModeBtrfsImage), so limits hold everywhere. Quota support is asked of
// the kernel (quotactl), never assumed. The mode is written to pool.json
// and kept: a later start never switches how existing volumes are stored.
// An image smaller than the configured size is grown, never shrunk.
//
// Operations. Every create is atomic-or-absent and idempotent: btrfs
// subvolumes and snapshots appear whole or not at all; files and copied
// trees are built under a .<name>.tmp name, synced and renamed. A create
// that finds its result (a retry after a crash) only re-applies the
// limit. Deleting what is missing succeeds. Leftover .tmp entries are
// removed at start.
//
// Block snapshots and clones are reflinks (FICLONE) where the pool shares
// extents, sparse copies elsewhere; freezing a mounted filesystem around
// them is the caller's business. Mutable properties (compression) are
// btrfs properties on the volume's directory or file.
//
// The package does its privileged work through hostops.Host.
package pool
