package hostops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Subvolumes, snapshots and qgroup limits go through the btrfs ioctls
// directly: they sit on the path of every CreateVolume and DeleteVolume,
// and starting btrfs-progs costs more than the operation. Enabling quota
// and setting properties, which are rare, go through btrfs-progs.

// btrfs ioctl numbers (magic 0x94) and argument layouts from
// linux/btrfs.h. btrfs_ioctl_vol_args and _v2 are both 4096 bytes.
const (
	ioctlBtrfsSubvolCreate  = 0x5000940E // _IOW(0x94, 14, btrfs_ioctl_vol_args)
	ioctlBtrfsSnapDestroy   = 0x5000940F // _IOW(0x94, 15, btrfs_ioctl_vol_args)
	ioctlBtrfsSnapCreateV2  = 0x50009417 // _IOW(0x94, 23, btrfs_ioctl_vol_args_v2)
	ioctlBtrfsQgroupLimit   = 0x8030942B // _IOR(0x94, 43, btrfs_ioctl_qgroup_limit_args)
	btrfsSubvolRdonly       = 1 << 1
	btrfsQgroupLimitMaxRfer = 1 << 0
)

type btrfsVolArgs struct {
	FD   int64
	Name [4088]byte
}

type btrfsVolArgsV2 struct {
	FD      int64
	TransID uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [4040]byte
}

type btrfsQgroupLimitArgs struct {
	QgroupID uint64
	Flags    uint64
	MaxRfer  uint64
	MaxExcl  uint64
	RsvRfer  uint64
	RsvExcl  uint64
}

func btrfsIoctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// openParent opens the directory holding path and returns it with the
// base name, checked to fit a btrfs name.
func openParent(path string) (*os.File, string, error) {
	name := filepath.Base(path)
	if name == "." || name == "/" || len(name) >= 4040 {
		return nil, "", fmt.Errorf("invalid subvolume name %q", name)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, "", err
	}
	return dir, name, nil
}

// BtrfsQuotaEnable implements Host.
func (h *Real) BtrfsQuotaEnable(ctx context.Context, path string) error {
	_, err := run(ctx, "btrfs", "quota", "enable", path)
	return err
}

// BtrfsSubvolumeCreate implements Host.
func (h *Real) BtrfsSubvolumeCreate(ctx context.Context, path string) error {
	dir, name, err := openParent(path)
	if err != nil {
		return err
	}
	defer dir.Close()
	var args btrfsVolArgs
	copy(args.Name[:], name)
	if err := btrfsIoctl(dir, ioctlBtrfsSubvolCreate, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "create subvolume", Path: path, Err: err}
	}
	return nil
}

// BtrfsSubvolumeSnapshot implements Host.
func (h *Real) BtrfsSubvolumeSnapshot(ctx context.Context, src, dst string, readonly bool) error {
	source, err := os.Open(src)
	if err != nil {
		return err
	}
	defer source.Close()
	dir, name, err := openParent(dst)
	if err != nil {
		return err
	}
	defer dir.Close()
	args := btrfsVolArgsV2{FD: int64(source.Fd())}
	if readonly {
		args.Flags = btrfsSubvolRdonly
	}
	copy(args.Name[:], name)
	if err := btrfsIoctl(dir, ioctlBtrfsSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "snapshot " + src, Path: dst, Err: err}
	}
	return nil
}

// BtrfsSubvolumeDelete implements Host. The space is given back by the
// filesystem's cleaner in the background.
func (h *Real) BtrfsSubvolumeDelete(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	dir, name, err := openParent(path)
	if err != nil {
		return err
	}
	defer dir.Close()
	var args btrfsVolArgs
	copy(args.Name[:], name)
	if err := btrfsIoctl(dir, ioctlBtrfsSnapDestroy, unsafe.Pointer(&args)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "delete subvolume", Path: path, Err: err}
	}
	return nil
}

// BtrfsQgroupLimit implements Host.
func (h *Real) BtrfsQgroupLimit(ctx context.Context, path string, bytes int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Qgroup ID 0 names the subvolume the file descriptor is in; a
	// limit of all ones removes the limit.
	args := btrfsQgroupLimitArgs{Flags: btrfsQgroupLimitMaxRfer, MaxRfer: ^uint64(0)}
	if bytes > 0 {
		args.MaxRfer = uint64(bytes)
	}
	if err := btrfsIoctl(f, ioctlBtrfsQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "limit qgroup", Path: path, Err: err}
	}
	return nil
}

// BtrfsSetProperty implements Host.
func (h *Real) BtrfsSetProperty(ctx context.Context, path, name, value string) error {
	_, err := run(ctx, "btrfs", "property", "set", path, name, value)
	return err
}

// btrfs ioctl numbers: _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
// (4096 bytes) and _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args) (1024).
const (
	ioctlBtrfsInoLookup = 0xD0009412
	ioctlBtrfsFSInfo    = 0x8400941F
	btrfsFirstFreeObj   = 256
)

type btrfsInoLookupArgs struct {
	TreeID   uint64
	ObjectID uint64
	Name     [4080]byte
}

type btrfsFSInfoArgs struct {
	MaxID      uint64
	NumDevices uint64
	FSID       [16]byte
	_          [1024 - 32]byte
}

// BtrfsQgroupUsage implements Host by reading the subvolume's qgroup from
// /sys/fs/btrfs/<fsid>/qgroups/0_<subvolume id>.
func (h *Real) BtrfsQgroupUsage(ctx context.Context, path string) (used, limit int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	lookup := btrfsInoLookupArgs{ObjectID: btrfsFirstFreeObj}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlBtrfsInoLookup, uintptr(unsafe.Pointer(&lookup))); e != 0 {
		return 0, 0, &os.PathError{Op: "btrfs subvolume id", Path: path, Err: e}
	}
	var info btrfsFSInfoArgs
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlBtrfsFSInfo, uintptr(unsafe.Pointer(&info))); e != 0 {
		return 0, 0, &os.PathError{Op: "btrfs fs info", Path: path, Err: e}
	}
	u := info.FSID
	fsid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	dir := filepath.Join("/sys/fs/btrfs", fsid, "qgroups", fmt.Sprintf("0_%d", lookup.TreeID))
	used, err = readSysfsInt(filepath.Join(dir, "referenced"))
	if err != nil {
		return 0, 0, fmt.Errorf("qgroup usage of %s: %w", path, err)
	}
	limit, err = readSysfsInt(filepath.Join(dir, "max_referenced"))
	if err != nil {
		return 0, 0, fmt.Errorf("qgroup limit of %s: %w", path, err)
	}
	return used, limit, nil
}

func readSysfsInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "none" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > 1<<62 {
		return 0, nil // no limit
	}
	return int64(n), nil
}
