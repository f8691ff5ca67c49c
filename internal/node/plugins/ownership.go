package plugins

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// SetVolumeOwnership gives everything under dir the group fsGroup and
// group read (and, unless readOnly, write) permission, directories also
// setgid and group execute, as upstream's kubelet does for volumes that
// support ownership management (emptyDir, local, block-backed
// filesystems; not hostPath or nfs). A nil fsGroup does nothing. With
// policy OnRootMismatch the walk is skipped when dir itself already has
// the group and permissions, so a large volume is not walked at every
// mount. Symlinks get the group but keep their (meaningless) mode, and
// are never followed.
func SetVolumeOwnership(dir string, fsGroup *int64, policy *corev1.PodFSGroupChangePolicy, readOnly bool) error {
	if fsGroup == nil {
		return nil
	}
	if policy != nil && *policy == corev1.FSGroupChangeOnRootMismatch {
		ok, err := ownershipMatches(dir, *fsGroup, readOnly)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return changeOne(path, d, *fsGroup, readOnly)
	})
}

func groupMask(isDir, readOnly bool) os.FileMode {
	mask := os.FileMode(0o660)
	if readOnly {
		mask = 0o440
	}
	if isDir {
		mask |= os.ModeSetgid | 0o110
	}
	return mask
}

func ownershipMatches(dir string, fsGroup int64, readOnly bool) (bool, error) {
	info, err := os.Lstat(dir)
	if err != nil {
		return false, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return false, fmt.Errorf("stat %s: no owner information", dir)
	}
	mask := groupMask(info.IsDir(), readOnly)
	return int64(st.Gid) == fsGroup && info.Mode()&mask == mask, nil
}

func changeOne(path string, d fs.DirEntry, fsGroup int64, readOnly bool) error {
	info, err := d.Info()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no owner information", path)
	}
	if err := os.Lchown(path, int(st.Uid), int(fsGroup)); err != nil {
		return fmt.Errorf("set group of %s: %w", path, err)
	}
	if info.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	mask := groupMask(info.IsDir(), readOnly)
	mode := info.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSticky) | mask
	if info.IsDir() {
		mode |= os.ModeSetgid
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	return nil
}
