package localpv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrNotMountPoint is returned by Scrub for a directory that is not a
// mount point: what would be removed is then the discovery dir's own
// filesystem, so nothing is.
var ErrNotMountPoint = errors.New("not a mount point")

// ErrOtherFilesystem is returned by Scrub when a directory inside the
// volume is another mount: it is left as it is, with what leads to it.
var ErrOtherFilesystem = errors.New("another filesystem is mounted inside the volume")

// Scrub removes everything inside dir, which must be a mount point, and
// keeps dir. It works on file descriptors: it never follows a symbolic
// link (links are removed, not their targets) and never descends into
// another mount (ErrOtherFilesystem, after removing all else). It stops
// early with ctx's error when ctx is done; a later Scrub goes on.
func Scrub(ctx context.Context, dir string) error {
	parent, err := openDir(unix.AT_FDCWD, filepath.Dir(dir))
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	defer unix.Close(parent)
	root, err := openDir(parent, filepath.Base(dir))
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	defer unix.Close(root)
	pm, err := mountOf(parent)
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	rm, err := mountOf(root)
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	if pm == rm {
		return fmt.Errorf("scrub %s: %w", dir, ErrNotMountPoint)
	}
	if err := removeContents(ctx, root, rm, dir); err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	return nil
}

// mountID identifies the mount a descriptor is on: the mount ID where
// statx reports it, else the device.
type mountID struct {
	id       uint64
	dev      uint64
	byDevice bool
}

func mountOf(fd int) (mountID, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return mountID{}, fmt.Errorf("statx: %w", err)
	}
	dev := unix.Mkdev(st.Dev_major, st.Dev_minor)
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return mountID{dev: dev, byDevice: true}, nil
	}
	return mountID{id: st.Mnt_id, dev: dev}, nil
}

func openDir(at int, name string) (int, error) {
	fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// removeContents removes every entry of the directory dfd (on mount m;
// path is for errors), depth first. A subdirectory on another mount is
// kept, and reported once everything else is gone.
func removeContents(ctx context.Context, dfd int, m mountID, path string) error {
	names, err := readNames(dfd)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var kept error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("%s: %w", filepath.Join(path, name), err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %s: %w", filepath.Join(path, name), err)
			}
			continue
		}
		sub, err := openDir(dfd, name)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		sm, err := mountOf(sub)
		if err == nil && sm != m {
			kept = fmt.Errorf("%w: %s", ErrOtherFilesystem, filepath.Join(path, name))
			unix.Close(sub)
			continue
		}
		if err == nil {
			err = removeContents(ctx, sub, m, filepath.Join(path, name))
		}
		unix.Close(sub)
		if err != nil {
			if errors.Is(err, ErrOtherFilesystem) {
				kept = err
				continue
			}
			return err
		}
		if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove %s: %w", filepath.Join(path, name), err)
		}
	}
	return kept
}

// readNames lists the directory dfd, without "." and "..". It reads
// through a duplicate, so dfd itself stays usable.
func readNames(dfd int) ([]string, error) {
	dup, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(1024)
		names = append(names, batch...)
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
