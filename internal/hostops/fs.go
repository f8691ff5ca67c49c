package hostops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ProbeFilesystem implements Host with blkid's low-level probe, which reads
// the device itself rather than a cache.
func (h *Real) ProbeFilesystem(ctx context.Context, dev string) (string, error) {
	out, err := run(ctx, "blkid", "-p", "-s", "TYPE", "-o", "value", dev)
	if err != nil {
		// blkid exits 2 when the device carries no signature it knows.
		if ExitCodeOf(err) == 2 {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Mkfs implements Host.
func (h *Real) Mkfs(ctx context.Context, dev, fstype string) error {
	var err error
	switch fstype {
	case "ext4", "ext3", "ext2":
		// No blocks reserved for root: the volume's capacity is what the
		// user asked for. Lazy init keeps formatting fast.
		_, err = run(ctx, "mkfs."+fstype, "-q", "-F", "-m", "0",
			"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", dev)
	case "xfs":
		_, err = run(ctx, "mkfs.xfs", "-q", "-f", "-K", dev)
	case "btrfs":
		_, err = run(ctx, "mkfs.btrfs", "-q", "-f", "-K", dev)
	default:
		return fmt.Errorf("mkfs %q: %w", fstype, ErrNotSupported)
	}
	return err
}

// GrowFilesystem implements Host. ext2/3/4 grow offline when mountpoint
// is empty (after a forced check, which resize2fs demands); growing them
// online needs CAP_SYS_RESOURCE. XFS and btrfs grow only mounted.
func (h *Real) GrowFilesystem(ctx context.Context, dev, mountpoint, fstype string) error {
	var err error
	switch fstype {
	case "ext4", "ext3", "ext2":
		if mountpoint == "" {
			// e2fsck -p exits 1 or 2 when it fixed something; only
			// 4 and above mean the filesystem is not sound.
			if _, err := run(ctx, "e2fsck", "-f", "-p", dev); err != nil {
				if code := ExitCodeOf(err); code < 0 || code >= 4 {
					return err
				}
			}
		}
		_, err = run(ctx, "resize2fs", dev)
	case "xfs", "btrfs":
		if mountpoint == "" {
			return fmt.Errorf("grow %s offline: %w", fstype, ErrNotSupported)
		}
		if fstype == "xfs" {
			_, err = run(ctx, "xfs_growfs", mountpoint)
		} else {
			_, err = run(ctx, "btrfs", "filesystem", "resize", "max", mountpoint)
		}
	default:
		return fmt.Errorf("grow %q: %w", fstype, ErrNotSupported)
	}
	return err
}

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// Freeze implements Host.
func (h *Real) Freeze(ctx context.Context, mountpoint string) error {
	return freezeIoctl(mountpoint, ioctlFIFREEZE, "freeze")
}

// Thaw implements Host.
func (h *Real) Thaw(ctx context.Context, mountpoint string) error {
	err := freezeIoctl(mountpoint, ioctlFITHAW, "thaw")
	if errors.Is(err, unix.EINVAL) {
		return nil // not frozen
	}
	return err
}

func freezeIoctl(mountpoint string, req uint, op string) error {
	f, err := os.Open(mountpoint)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), req, 0); err != nil {
		return &os.PathError{Op: op, Path: mountpoint, Err: err}
	}
	return nil
}
