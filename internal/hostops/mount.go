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

// BindMount implements Host. The bind is made with the mount API of
// Linux 5.12: open_tree(2) clones source's mount detached from the tree,
// mount_setattr(2) gives the clone its flags and move_mount(2) attaches
// it at target. The mount is never visible without its flags (a bind
// mount followed by a remount shows a writable mount for a moment), and
// the flags the source's mount locks (nosuid, nodev, ...) are kept by
// construction. Both paths are followed as mount(2) follows them, so
// /proc/self/fd/N (a Target's Path) names the object opened.
func (h *Real) BindMount(ctx context.Context, source, target string, options []string) error {
	o, err := ParseMountOptions(options)
	if err != nil {
		return err
	}
	if len(o.Data) > 0 {
		return fmt.Errorf("%w: %q cannot be applied to a bind mount", ErrBadMountOption, strings.Join(o.Data, ","))
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "bind mount " + source, Path: target, Err: err}
	}
	defer unix.Close(tree)
	if attr := mountAttr(o.Flags); attr.Attr_set != 0 || attr.Attr_clr != 0 {
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return &os.PathError{Op: "set flags of bind mount " + source, Path: target, Err: err}
		}
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS); err != nil {
		return &os.PathError{Op: "bind mount " + source, Path: target, Err: err}
	}
	return nil
}

// mountAttr turns the per-mount MS_* flags into mount_setattr(2)'s
// attributes. Flags of the filesystem rather than of the mount (sync,
// dirsync, lazytime) do not apply to a bind mount and are left out, as a
// bind remount ignores them.
func mountAttr(flags uintptr) unix.MountAttr {
	var a unix.MountAttr
	for ms, attr := range map[uintptr]uint64{
		unix.MS_RDONLY:     unix.MOUNT_ATTR_RDONLY,
		unix.MS_NOSUID:     unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV:      unix.MOUNT_ATTR_NODEV,
		unix.MS_NOEXEC:     unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME,
	} {
		if flags&ms != 0 {
			a.Attr_set |= attr
		}
	}
	// The access-time modes are one field: setting one clears the others.
	switch {
	case flags&unix.MS_NOATIME != 0:
		a.Attr_set, a.Attr_clr = a.Attr_set|unix.MOUNT_ATTR_NOATIME, unix.MOUNT_ATTR__ATIME
	case flags&unix.MS_STRICTATIME != 0:
		a.Attr_set, a.Attr_clr = a.Attr_set|unix.MOUNT_ATTR_STRICTATIME, unix.MOUNT_ATTR__ATIME
	case flags&unix.MS_RELATIME != 0:
		a.Attr_set, a.Attr_clr = a.Attr_set|unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME
	}
	return a
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

// IsMountPoint implements Host. It asks the kernel whether path is the
// root of a mount (statx's STATX_ATTR_MOUNT_ROOT, one system call, so
// bind mounts of a directory onto a directory of the same filesystem are
// seen too); a kernel that cannot say (before 5.8) has the mount table
// read instead, which costs a parse of every mount on the machine.
func (h *Real) IsMountPoint(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	var stx unix.Statx_t
	err = unix.Statx(unix.AT_FDCWD, abs, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, 0, &stx)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if mountutils.IsCorruptedMnt(err) {
			return true, nil
		}
		return false, &os.PathError{Op: "statx", Path: abs, Err: err}
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
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
