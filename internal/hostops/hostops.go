package hostops

import (
	"context"
	"errors"
)

// Host is the one narrow privileged interface of volplane's storage code:
// everything that needs root on the machine (mounts, loop devices,
// filesystems, btrfs subvolumes and qgroups, freezing) goes through it.
// Real is the only real implementation; fakehost provides an in-memory one
// for tests of the logic above it.
//
// Every method is idempotent where the operation allows it: mounting what is
// already mounted the same way, unmounting what is not mounted, attaching a
// file that is already attached, detaching a free device and deleting a
// missing subvolume all succeed.
type Host interface {
	// Mount mounts source (a block device) on target with the given
	// filesystem type and mount options ("ro", "noatime", or filesystem
	// specific data options).
	Mount(ctx context.Context, source, target, fstype string, options []string) error
	// BindMount bind-mounts source (a directory or a device node) on
	// target, then applies options ("ro", "nosuid", ...) with a remount.
	// Options that only make sense for a filesystem are refused with
	// ErrBadMountOption.
	BindMount(ctx context.Context, source, target string, options []string) error
	// MountCommand mounts with mount(8), "mount -t fstype -o options
	// source target", for filesystems that need mount's user-space helper
	// (nfs: mount.nfs resolves the server and negotiates the protocol).
	// A failure is an *ExecError with mount's exit code (32: mount
	// failure).
	MountCommand(ctx context.Context, source, target, fstype string, options []string) error
	// Unmount unmounts target; a target that is not a mount point or does
	// not exist is not an error.
	Unmount(ctx context.Context, target string) error
	// Mounts lists the mount table of this process's mount namespace.
	Mounts() ([]MountPoint, error)
	// IsMountPoint reports whether path is a mount point.
	IsMountPoint(path string) (bool, error)
	// MakeMountPoint makes the directory path a mount point (bound onto
	// itself when it is not one) with recursive shared or private
	// propagation. Shared is what the kubelet does with its root
	// directory, so that mounts made below it later reach containers
	// that bind it with rslave or rshared, and Bidirectional mounts from
	// containers reach the host; private keeps a directory (the
	// runtime's bundles) out of such a shared tree. A mount point that
	// already has the propagation asked for is left as it is.
	MakeMountPoint(ctx context.Context, path string, p Propagation) error

	// LoopAttach attaches file to a free loop device and returns the
	// device path; when file is already attached it returns that device.
	// The device stays until LoopDetach.
	LoopAttach(ctx context.Context, file string) (string, error)
	// LoopAutoclear makes the device detach itself when its last user
	// (a mount) lets go, the way mount -o loop does.
	LoopAutoclear(ctx context.Context, dev string) error
	// LoopFind returns the loop device backed by file, or "" if none.
	LoopFind(file string) (string, error)
	// LoopDetach detaches the loop device; a device that is not attached
	// is not an error. A device still in use is detached by the kernel
	// when its last user closes it.
	LoopDetach(ctx context.Context, dev string) error
	// LoopRefreshSize makes the loop device pick up its file's new size.
	LoopRefreshSize(ctx context.Context, dev string) error
	// DeviceSize returns the size of a block device in bytes.
	DeviceSize(dev string) (int64, error)

	// ProbeFilesystem returns the filesystem type found on dev, or "" when
	// dev carries no filesystem signature.
	ProbeFilesystem(ctx context.Context, dev string) (string, error)
	// Mkfs creates a filesystem of type fstype (ext4, xfs, btrfs) on dev.
	Mkfs(ctx context.Context, dev, fstype string) error
	// GrowFilesystem grows the filesystem on dev, mounted at mountpoint,
	// to the size of the device. An empty mountpoint means the filesystem
	// is not mounted; only ext2/3/4 can grow so (ErrNotSupported else).
	GrowFilesystem(ctx context.Context, dev, mountpoint, fstype string) error
	// Freeze and Thaw suspend and resume writes to the filesystem mounted
	// at mountpoint (FIFREEZE/FITHAW). Thawing a filesystem that is not
	// frozen is not an error.
	Freeze(ctx context.Context, mountpoint string) error
	Thaw(ctx context.Context, mountpoint string) error

	// BtrfsQuotaEnable turns qgroup accounting on for the btrfs
	// filesystem containing path.
	BtrfsQuotaEnable(ctx context.Context, path string) error
	// BtrfsSubvolumeCreate creates a subvolume at path.
	BtrfsSubvolumeCreate(ctx context.Context, path string) error
	// BtrfsSubvolumeSnapshot snapshots subvolume src to dst.
	BtrfsSubvolumeSnapshot(ctx context.Context, src, dst string, readonly bool) error
	// BtrfsSubvolumeDelete deletes the subvolume at path; a missing path
	// is not an error.
	BtrfsSubvolumeDelete(ctx context.Context, path string) error
	// BtrfsQgroupLimit limits the bytes referenced by the subvolume at
	// path; 0 removes the limit.
	BtrfsQgroupLimit(ctx context.Context, path string, bytes int64) error
	// BtrfsQgroupUsage returns the bytes referenced by the subvolume at
	// path and its referenced-bytes limit (0 when unlimited).
	BtrfsQgroupUsage(ctx context.Context, path string) (used, limit int64, err error)
	// BtrfsSetProperty sets a btrfs property (e.g. compression) on path.
	BtrfsSetProperty(ctx context.Context, path, name, value string) error

	// CloneFile makes dst an independent copy of regular file src: a
	// reflink where the filesystem shares extents, else a sparse copy.
	// dst must not exist. The copy is synced before CloneFile returns.
	CloneFile(ctx context.Context, src, dst string) error

	// ProjectQuotaSupported reports whether the filesystem holding path
	// enforces XFS/ext4 project quotas (it needs kernel quota support and
	// a filesystem mounted with project quota on).
	ProjectQuotaSupported(ctx context.Context, path string) (bool, error)
	// SetProjectQuota gives directory dir project ID id (inherited by
	// everything created below it) and limits the project to bytes.
	SetProjectQuota(ctx context.Context, dir string, id uint32, bytes int64) error
	// ProjectQuotaUsage returns the bytes used by project id on the
	// filesystem holding dir and its limit.
	ProjectQuotaUsage(ctx context.Context, dir string, id uint32) (used, limit int64, err error)
}

// MountPoint is one line of the mount table.
type MountPoint struct {
	// Path is where the mount is attached.
	Path string
	// Root is the path inside the source filesystem that is mounted
	// (not "/" for bind mounts and btrfs subvolumes).
	Root string
	// Source is the mounted device or pseudo filesystem name.
	Source string
	// FSType is the filesystem type.
	FSType string
	// Major and Minor identify the mounted filesystem's device.
	Major, Minor int
	// Options are the per-mount options (ro, nosuid, ...).
	Options []string
}

// ErrBadMountOption reports a mount option that cannot be applied.
var ErrBadMountOption = errors.New("unsupported mount option")

// ErrNotSupported reports an operation the host or filesystem cannot do.
var ErrNotSupported = errors.New("not supported by this host")
