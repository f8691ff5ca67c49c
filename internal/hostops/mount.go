package hostops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	mountutils "k8s.io/mount-utils"
)

// mountFlags maps the generic mount options to their MS_* flag. A flag
// whose value is negative clears that flag instead (e.g. "rw", "suid").
var mountFlags = map[string]struct {
	flag  uintptr
	clear bool
}{
	"ro":          {unix.MS_RDONLY, false},
	"rw":          {unix.MS_RDONLY, true},
	"nosuid":      {unix.MS_NOSUID, false},
	"suid":        {unix.MS_NOSUID, true},
	"nodev":       {unix.MS_NODEV, false},
	"dev":         {unix.MS_NODEV, true},
	"noexec":      {unix.MS_NOEXEC, false},
	"exec":        {unix.MS_NOEXEC, true},
	"sync":        {unix.MS_SYNCHRONOUS, false},
	"async":       {unix.MS_SYNCHRONOUS, true},
	"dirsync":     {unix.MS_DIRSYNC, false},
	"noatime":     {unix.MS_NOATIME, false},
	"atime":       {unix.MS_NOATIME, true},
	"nodiratime":  {unix.MS_NODIRATIME, false},
	"diratime":    {unix.MS_NODIRATIME, true},
	"relatime":    {unix.MS_RELATIME, false},
	"norelatime":  {unix.MS_RELATIME, true},
	"strictatime": {unix.MS_STRICTATIME, false},
	"lazytime":    {unix.MS_LAZYTIME, false},
	"nolazytime":  {unix.MS_LAZYTIME, true},
	"defaults":    {0, false},
}

// MountOptions is a parsed list of mount options.
type MountOptions struct {
	// Flags are the MS_* flags to set.
	Flags uintptr
	// Data are the remaining, filesystem specific options.
	Data []string
}

// ReadOnly reports whether the options ask for a read-only mount.
func (o MountOptions) ReadOnly() bool { return o.Flags&unix.MS_RDONLY != 0 }

// ParseMountOptions splits options into generic mount flags and filesystem
// specific data. Options that change how a mount attaches (bind, remount,
// move, propagation) are refused: the driver decides those.
func ParseMountOptions(options []string) (MountOptions, error) {
	var o MountOptions
	for _, opt := range options {
		opt = strings.TrimSpace(opt)
		if opt == "" {
			continue
		}
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
			} else {
				o.Flags |= f.flag
			}
			continue
		}
		switch opt {
		case "bind", "rbind", "remount", "move", "shared", "rshared", "slave", "rslave",
			"private", "rprivate", "unbindable", "runbindable":
			return MountOptions{}, fmt.Errorf("%w: %q is chosen by the driver", ErrBadMountOption, opt)
		}
		if strings.ContainsAny(opt, "\x00\n") {
			return MountOptions{}, fmt.Errorf("%w: %q", ErrBadMountOption, opt)
		}
		o.Data = append(o.Data, opt)
	}
	return o, nil
}

// Mount implements Host.
func (h *Real) Mount(ctx context.Context, source, target, fstype string, options []string) error {
	o, err := ParseMountOptions(options)
	if err != nil {
		return err
	}
	if err := unix.Mount(source, target, fstype, o.Flags, strings.Join(o.Data, ",")); err != nil {
		return &os.PathError{Op: "mount " + source + " (" + fstype + ")", Path: target, Err: err}
	}
	return nil
}

// BindMount implements Host.
func (h *Real) BindMount(ctx context.Context, source, target string, options []string) error {
	o, err := ParseMountOptions(options)
	if err != nil {
		return err
	}
	if len(o.Data) > 0 {
		return fmt.Errorf("%w: %q cannot be applied to a bind mount", ErrBadMountOption, strings.Join(o.Data, ","))
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind mount " + source, Path: target, Err: err}
	}
	if o.Flags == 0 {
		return nil
	}
	// Per-mount flags of a bind mount only take effect with a remount.
	// The flags the source mount locks (nosuid, nodev, ...) must be kept.
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		_ = unix.Unmount(target, 0)
		return &os.PathError{Op: "statfs", Path: target, Err: err}
	}
	flags := unix.MS_REMOUNT | unix.MS_BIND | o.Flags | lockedFlags(st.Flags)
	if err := unix.Mount("", target, "", uintptr(flags), ""); err != nil {
		_ = unix.Unmount(target, 0)
		return &os.PathError{Op: "remount bind", Path: target, Err: err}
	}
	return nil
}

// lockedFlags returns the MS_* flags of a statfs f_flags value that a bind
// remount must keep (the kernel refuses to drop them in a user namespace,
// and dropping them silently would widen access).
func lockedFlags(f int64) uintptr {
	var out uintptr
	for st, ms := range map[int64]uintptr{
		unix.ST_NOSUID: unix.MS_NOSUID,
		unix.ST_NODEV:  unix.MS_NODEV,
		unix.ST_NOEXEC: unix.MS_NOEXEC,
		unix.ST_RDONLY: unix.MS_RDONLY,
	} {
		if f&st != 0 {
			out |= ms
		}
	}
	return out
}

// Unmount implements Host.
func (h *Real) Unmount(ctx context.Context, target string) error {
	err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// Not a mount point, or gone: nothing to do.
		return nil
	default:
		return &os.PathError{Op: "unmount", Path: target, Err: err}
	}
}

// Propagation is the propagation MakeMountPoint gives a mount point.
type Propagation int

const (
	// PropagationShared is mount --make-rshared.
	PropagationShared Propagation = iota + 1
	// PropagationPrivate is mount --make-rprivate.
	PropagationPrivate
)

// MakeMountPoint implements Host.
func (h *Real) MakeMountPoint(ctx context.Context, path string, p Propagation) error {
	var flag uintptr
	switch p {
	case PropagationShared:
		flag = unix.MS_SHARED
	case PropagationPrivate:
		flag = unix.MS_PRIVATE
	default:
		return fmt.Errorf("unknown propagation %d", p)
	}
	abs, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	infos, err := mountutils.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	mounted, shared, slave := false, false, false
	for _, mi := range infos {
		if mi.MountPoint != abs {
			continue
		}
		// The last mount on a path is the one visible there.
		mounted, shared, slave = true, false, false
		for _, f := range mi.OptionalFields {
			shared = shared || strings.HasPrefix(f, "shared:")
			slave = slave || strings.HasPrefix(f, "master:")
		}
	}
	if mounted && (p == PropagationShared && shared || p == PropagationPrivate && !shared && !slave) {
		return nil
	}
	if !mounted {
		if err := unix.Mount(abs, abs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return &os.PathError{Op: "bind mount onto itself", Path: abs, Err: err}
		}
	}
	if err := unix.Mount("", abs, "", flag|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "change propagation", Path: abs, Err: err}
	}
	return nil
}

// Mounts implements Host.
func (h *Real) Mounts() ([]MountPoint, error) {
	infos, err := mountutils.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	out := make([]MountPoint, 0, len(infos))
	for _, mi := range infos {
		out = append(out, MountPoint{
			Path:    mi.MountPoint,
			Root:    mi.Root,
			Source:  mi.Source,
			FSType:  mi.FsType,
			Major:   mi.Major,
			Minor:   mi.Minor,
			Options: mi.MountOptions,
		})
	}
	return out, nil
}

// IsMountPoint implements Host. It consults the mount table, so bind mounts
// of a directory onto a directory of the same filesystem are seen too.
func (h *Real) IsMountPoint(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	if _, err := os.Lstat(abs); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if mountutils.IsCorruptedMnt(err) {
			return true, nil
		}
		return false, err
	}
	mps, err := h.Mounts()
	if err != nil {
		return false, err
	}
	for _, mp := range mps {
		if mp.Path == abs {
			return true, nil
		}
	}
	return false, nil
}
