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

// The btrfs operations that change the filesystem go through btrfs-progs;
// reading usage goes through two read-only ioctls and sysfs, because
// kubelet asks for volume statistics often.

// BtrfsQuotaEnable implements Host.
func (h *Real) BtrfsQuotaEnable(ctx context.Context, path string) error {
	_, err := run(ctx, "btrfs", "quota", "enable", path)
	return err
}

// BtrfsSubvolumeCreate implements Host.
func (h *Real) BtrfsSubvolumeCreate(ctx context.Context, path string) error {
	_, err := run(ctx, "btrfs", "subvolume", "create", path)
	return err
}

// BtrfsSubvolumeSnapshot implements Host.
func (h *Real) BtrfsSubvolumeSnapshot(ctx context.Context, src, dst string, readonly bool) error {
	args := []string{"subvolume", "snapshot"}
	if readonly {
		args = append(args, "-r")
	}
	_, err := run(ctx, "btrfs", append(args, src, dst)...)
	return err
}

// BtrfsSubvolumeDelete implements Host.
func (h *Real) BtrfsSubvolumeDelete(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := run(ctx, "btrfs", "subvolume", "delete", path)
	return err
}

// BtrfsQgroupLimit implements Host.
func (h *Real) BtrfsQgroupLimit(ctx context.Context, path string, bytes int64) error {
	limit := "none"
	if bytes > 0 {
		limit = strconv.FormatInt(bytes, 10)
	}
	_, err := run(ctx, "btrfs", "qgroup", "limit", limit, path)
	return err
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
	return strconv.ParseInt(s, 10, 64)
}
