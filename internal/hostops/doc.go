// Package hostops is volplane's one privileged interface to the machine:
// mounts and bind mounts, loop devices, filesystems (mkfs, probe, grow,
// freeze), btrfs subvolumes, qgroups and properties, XFS/ext4 project
// quotas, and reflink copies. Host is the interface; Real is its only
// real implementation, fakehost an in-memory one for tests of the logic
// above it, and hostopstest gives root tests self-cleaning loop
// filesystems.
//
// System calls are used where the kernel offers a stable interface:
// mount(2) and umount(2), the loop driver's ioctls (LOOP_CTL_GET_FREE,
// LOOP_CONFIGURE, LOOP_CLR_FD, LOOP_SET_CAPACITY), FIFREEZE/FITHAW,
// FICLONE, quotactl_fd and FS_IOC_FSSETXATTR, and two read-only btrfs
// ioctls plus sysfs for qgroup usage. The rest runs the standard tools
// (blkid, mkfs.*, e2fsck, resize2fs, xfs_growfs, btrfs) through one
// function with exec.CommandContext; a failure is an *ExecError carrying
// the command, the exit code and stderr, and callers decide on the exit
// code, never on the text.
//
// Idempotency is part of the contract (see Host): unmounting what is not
// mounted, attaching an attached file, detaching a free device and
// deleting a missing subvolume all succeed, so callers can retry after a
// crash without first finding out how far they got.
//
// Mount table reads use k8s.io/mount-utils' mountinfo parser.
// IsMountPoint asks statx (STATX_ATTR_MOUNT_ROOT) instead and reads the
// table only on a kernel older than 5.8: with hundreds of pod mounts a
// table read costs milliseconds, the statx microseconds. The tools
// come from the Debian packages util-linux, e2fsprogs, xfsprogs and
// btrfs-progs.
package hostops
