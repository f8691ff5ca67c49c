package csidriver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// checkNodePath validates a staging or target path the CO hands to the
// node service: absolute and clean, reached without symlinks, outside the
// pool, and neither inside nor above a path where another volume is
// staged or published. A mount there would hand one volume's data to
// another volume's users, or hide it.
func (d *Driver) checkNodePath(path, volumeID string) error {
	if !filepath.IsAbs(path) {
		return errorf(codes.InvalidArgument, "path %q is not absolute", path)
	}
	if filepath.Clean(path) != path {
		return errorf(codes.InvalidArgument, "path %q is not clean", path)
	}
	// The deepest existing ancestor must resolve to itself: no symlink
	// on the way.
	existing := path
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return errorf(codes.InvalidArgument, "path %q: %w", path, err)
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	if fi, err := os.Lstat(existing); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return errorf(codes.InvalidArgument, "path %q is a symlink", existing)
	}
	if resolved, err := filepath.EvalSymlinks(existing); err != nil || resolved != existing {
		return errorf(codes.InvalidArgument, "path %q goes through a symlink", path)
	}
	if within(path, d.pool.Dir()) || within(d.pool.Dir(), path) {
		return errorf(codes.InvalidArgument, "path %q overlaps the pool %s", path, d.pool.Dir())
	}
	for _, o := range d.store.ListVolumes() {
		if o.ID == volumeID {
			continue
		}
		var paths []string
		if o.Staged != nil {
			paths = append(paths, o.Staged.Path)
		}
		for t := range o.Targets {
			paths = append(paths, t)
		}
		for _, p := range paths {
			if within(path, p) || within(p, path) {
				return errorf(codes.InvalidArgument, "path %q overlaps %s of volume %s", path, p, o.ID)
			}
		}
	}
	return nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// mountAt returns the top-most mount attached at path.
func (d *Driver) mountAt(path string) (hostops.MountPoint, bool, error) {
	mps, err := d.host.Mounts()
	if err != nil {
		return hostops.MountPoint{}, false, err
	}
	for i := len(mps) - 1; i >= 0; i-- {
		if mps[i].Path == path {
			return mps[i], true, nil
		}
	}
	return hostops.MountPoint{}, false, nil
}

// mountIsVolume reports whether a mount shows volume v: a bind of its
// directory, its loop device's filesystem, or its loop device node.
func mountIsVolume(mp hostops.MountPoint, v *state.Volume) bool {
	if v.Kind == state.KindDir {
		return strings.HasSuffix(mp.Root, "/volumes/"+v.ID)
	}
	if v.Staged == nil || v.Staged.Device == "" {
		return false
	}
	dev := v.Staged.Device
	return mp.Source == dev || mp.Root == "/"+filepath.Base(dev)
}

// ensureDir makes path a directory if it does not exist, and reports
// whether it made it.
func ensureDir(path string) (created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, nil
	case err == nil:
		return false, errorf(codes.InvalidArgument, "%s exists and is not a directory", path)
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(path, 0o750); err != nil {
			return false, fmt.Errorf("create %s: %w", path, err)
		}
		return true, nil
	default:
		return false, err
	}
}

// ensureFile makes path an empty file if it does not exist: the mount
// point of a raw block device.
func ensureFile(path string) (created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.IsDir():
		return false, nil
	case err == nil:
		return false, errorf(codes.InvalidArgument, "%s is a directory; a block volume is published on a file", path)
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			return false, fmt.Errorf("create %s: %w", path, err)
		}
		return true, f.Close()
	default:
		return false, err
	}
}
