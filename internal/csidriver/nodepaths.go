package csidriver

import (
	"errors"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
	"volplane/internal/hostops"
)

// checkNodePath validates a staging or target path the CO hands to the
// node service: absolute and clean, outside the pool, and neither inside
// nor above a path where another volume is staged or published. A mount there would hand one volume's data to
// another volume's users, or hide it. That no symlink leads there is
// checked when the path is opened to mount on (openTarget), on the
// object that is then mounted on.
func (d *Driver) checkNodePath(path, volumeID string) error {
	if !filepath.IsAbs(path) {
		return errorf(codes.InvalidArgument, "path %q is not absolute", path)
	}
	if filepath.Clean(path) != path {
		return errorf(codes.InvalidArgument, "path %q is not clean", path)
	}
	if within(path, d.pool.Dir()) || within(d.pool.Dir(), path) {
		return errorf(codes.InvalidArgument, "path %q overlaps the pool %s", path, d.pool.Dir())
	}
	var err error
	d.store.VisitVolumes(func(o *state.Volume) {
		if err != nil || o.ID == volumeID {
			return
		}
		overlaps := func(p string) {
			if err == nil && (within(path, p) || within(p, path)) {
				err = errorf(codes.InvalidArgument, "path %q overlaps %s of volume %s", path, p, o.ID)
			}
		}
		if o.Staged != nil {
			overlaps(o.Staged.Path)
		}
		for t := range o.Targets {
			overlaps(t)
		}
	})
	return err
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
	mp, ok := mountAtIn(mps, path)
	return mp, ok, nil
}

// mountAtIn returns the top-most mount of mps attached at path.
func mountAtIn(mps []hostops.MountPoint, path string) (hostops.MountPoint, bool) {
	for i := len(mps) - 1; i >= 0; i-- {
		if mps[i].Path == path {
			return mps[i], true
		}
	}
	return hostops.MountPoint{}, false
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

// openTarget opens a staging or target path to mount on, creating it
// (a directory, or an empty file for a raw block device) without
// following a symlink anywhere on the way; the mount goes on the
// descriptor, so what was checked is what is mounted on.
func openTarget(path string, file bool) (*hostops.Target, error) {
	t, err := hostops.OpenTarget(path, file)
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, hostops.ErrSymlinkInPath), errors.Is(err, hostops.ErrTargetKind):
		return nil, errorf(codes.InvalidArgument, "%w", err)
	default:
		return nil, hostError(err, "open %s", path)
	}
}
