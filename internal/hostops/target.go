package hostops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSymlinkInPath is returned by OpenTarget when a component of the path
// is a symbolic link.
var ErrSymlinkInPath = errors.New("path goes through a symbolic link")

// ErrTargetKind is returned by OpenTarget when the target exists as the
// other kind: a file where a directory is wanted, or the reverse.
var ErrTargetKind = errors.New("mount target is of the wrong kind")

// Target is a mount target opened by OpenTarget. Mount on Path(), never on
// the path string again: Path names the object that was opened, so a
// symlink swapped into the path after it was checked changes nothing.
type Target struct {
	fd int
	// Name is the path the target was opened from, for messages.
	Name string
	// Created reports whether OpenTarget made the target itself (its
	// parents may have been made too; they are not counted).
	Created bool
}

// Path is /proc/self/fd/N, the magic link to the opened target. mount(2)
// and this package's Mount and BindMount mount onto what it names.
func (t *Target) Path() string { return "/proc/self/fd/" + strconv.Itoa(t.fd) }

// Close releases the descriptor; the mount made on Path stays.
func (t *Target) Close() error { return unix.Close(t.fd) }

// OpenTarget opens path, an absolute and clean path, to mount on. Missing
// components are made one at a time (directories 0750; the last one a
// directory, or an empty 0640 file when file is set: the mount point of a
// device), each made with mkdirat(2) or openat(2) on the descriptor of its
// parent and opened from that descriptor with openat2(2) and
// RESOLVE_NO_SYMLINKS, so no component is ever a symlink, and none is
// looked up by its path string twice. An existing target of the other
// kind (a file where a directory is wanted, or the reverse) is refused.
func OpenTarget(path string, file bool) (*Target, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
		return nil, fmt.Errorf("mount target %q: not an absolute, clean path below /", path)
	}
	dir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	parts := strings.Split(path[1:], "/")
	created := false
	for i, name := range parts {
		last := i == len(parts)-1
		fd, err := openComponent(dir, name)
		if errors.Is(err, unix.ENOENT) {
			if last && file {
				var f int
				f, err = unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o640)
				if err == nil {
					_ = unix.Close(f)
				}
			} else {
				err = unix.Mkdirat(dir, name, 0o750)
			}
			if err != nil && !errors.Is(err, unix.EEXIST) {
				_ = unix.Close(dir)
				return nil, &os.PathError{Op: "create", Path: "/" + strings.Join(parts[:i+1], "/"), Err: err}
			}
			created = last && err == nil
			fd, err = openComponent(dir, name)
		}
		_ = unix.Close(dir)
		if err != nil {
			at := "/" + strings.Join(parts[:i+1], "/")
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
				return nil, fmt.Errorf("mount target %s: %w at %s", path, ErrSymlinkInPath, at)
			}
			return nil, &os.PathError{Op: "open", Path: at, Err: err}
		}
		dir = fd
	}
	t := &Target{fd: dir, Name: path, Created: created}
	var st unix.Stat_t
	if err := unix.Fstat(dir, &st); err != nil {
		_ = t.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case file && isDir:
		_ = t.Close()
		return nil, fmt.Errorf("%w: %s is a directory; a block volume is published on a file", ErrTargetKind, path)
	case !file && !isDir:
		_ = t.Close()
		return nil, fmt.Errorf("%w: %s exists and is not a directory", ErrTargetKind, path)
	}
	return t, nil
}

// openComponent opens name, one path component, beneath dir without
// following any symlink.
func openComponent(dir int, name string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(dir, name, &how)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
