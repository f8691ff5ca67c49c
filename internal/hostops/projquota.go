package hostops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Project quotas (XFS, ext4 with the project feature) limit a directory
// tree by a project ID that its inodes inherit. They need a kernel built
// with quota support (CONFIG_QUOTA) and a filesystem mounted with project
// quota on; ProjectQuotaSupported asks the kernel rather than assuming.

const (
	prjQuota = 2 // PRJQUOTA

	qGetInfo  = 0x800005 // Q_GETINFO
	qGetQuota = 0x800007 // Q_GETQUOTA
	qSetQuota = 0x800008 // Q_SETQUOTA

	qifBLimits = 1 // QIF_BLIMITS
	qifSpace   = 2 // QIF_SPACE

	// FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR on struct fsxattr (28 bytes).
	ioctlFSGetXattr  = 0x801C581F
	ioctlFSSetXattr  = 0x401C5820
	fsXflagProjInher = 0x200 // FS_XFLAG_PROJINHERIT
)

func qcmd(cmd, typ int) int { return cmd<<8 | typ }

type ifDqinfo struct {
	Bgrace, Igrace uint64
	Flags, Valid   uint32
}

type ifDqblk struct {
	BHardLimit, BSoftLimit, CurSpace  uint64
	IHardLimit, ISoftLimit, CurInodes uint64
	BTime, ITime                      uint64
	Valid                             uint32
	_                                 uint32
}

type fsxattr struct {
	XFlags, ExtSize, NExtents, ProjID, CowExtSize uint32
	_                                             [8]byte
}

func quotactlFD(f *os.File, cmd int, id uint32, addr unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, f.Fd(), uintptr(cmd), uintptr(id), uintptr(addr), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ProjectQuotaSupported implements Host. Any answer but "project quota is
// on for this filesystem" (ENOSYS without CONFIG_QUOTA, ESRCH when quota is
// off, EINVAL/ENOTTY on filesystems without quota) is a plain false.
func (h *Real) ProjectQuotaSupported(ctx context.Context, path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var info ifDqinfo
	err = quotactlFD(f, qcmd(qGetInfo, prjQuota), 0, unsafe.Pointer(&info))
	if err == nil {
		return true, nil
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return false, nil
	}
	return false, fmt.Errorf("probe project quota on %s: %w", path, err)
}

// SetProjectQuota implements Host.
func (h *Real) SetProjectQuota(ctx context.Context, dir string, id uint32, bytes int64) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var attr fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlFSGetXattr, uintptr(unsafe.Pointer(&attr))); e != 0 {
		return &os.PathError{Op: "get project id", Path: dir, Err: e}
	}
	attr.ProjID = id
	attr.XFlags |= fsXflagProjInher
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlFSSetXattr, uintptr(unsafe.Pointer(&attr))); e != 0 {
		return &os.PathError{Op: "set project id", Path: dir, Err: e}
	}
	// Limits are in 1 KiB quota blocks.
	q := ifDqblk{BHardLimit: uint64((bytes + 1023) / 1024), BSoftLimit: uint64((bytes + 1023) / 1024), Valid: qifBLimits}
	if err := quotactlFD(f, qcmd(qSetQuota, prjQuota), id, unsafe.Pointer(&q)); err != nil {
		return &os.PathError{Op: fmt.Sprintf("set project %d quota", id), Path: dir, Err: err}
	}
	return nil
}

// ProjectQuotaUsage implements Host.
func (h *Real) ProjectQuotaUsage(ctx context.Context, dir string, id uint32) (used, limit int64, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var q ifDqblk
	if err := quotactlFD(f, qcmd(qGetQuota, prjQuota), id, unsafe.Pointer(&q)); err != nil {
		return 0, 0, &os.PathError{Op: fmt.Sprintf("get project %d quota", id), Path: dir, Err: err}
	}
	return int64(q.CurSpace), int64(q.BHardLimit) * 1024, nil
}
