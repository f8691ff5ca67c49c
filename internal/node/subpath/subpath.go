package subpath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
)

// ErrEscape is returned when the subPath leads out of the volume.
var ErrEscape = errors.New("not within volume path")

// Validate checks a subPath the way the kubelet does before using it.
func Validate(subPath string) error {
	if filepath.IsAbs(subPath) || strings.HasPrefix(subPath, "/") {
		return fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	for _, part := range strings.Split(filepath.ToSlash(subPath), "/") {
		if part == ".." {
			return fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
		}
	}
	return nil
}

// Target is where the subPath of mount index of container is mounted.
func Target(podDir, volume, container string, index int) string {
	return filepath.Join(podDir, "volume-subpaths", volume, container, strconv.Itoa(index))
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

func openBeneath(root int, path string) (int, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(root, path, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		return fd, err
	}
}

// open resolves subPath beneath the volume root fd, making missing
// directories (mode perm) one component at a time.
func open(root int, subPath string, perm uint32) (int, error) {
	clean := filepath.Clean(subPath)
	if clean == "." {
		return unix.Dup(root)
	}
	fd, err := openBeneath(root, clean)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parts := strings.Split(clean, "/")
	parent, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for i, part := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fd, err := openBeneath(root, prefix)
		if errors.Is(err, unix.ENOENT) {
			// The parent is a descriptor of a directory beneath the
			// root; mkdirat creates exactly this name in it, whatever
			// happens to the path meanwhile.
			if mkErr := unix.Mkdirat(parent, part, perm); mkErr != nil && !errors.Is(mkErr, unix.EEXIST) {
				unix.Close(parent)
				return -1, mkErr
			}
			fd, err = openBeneath(root, prefix)
		}
		unix.Close(parent)
		if err != nil {
			return -1, err
		}
		parent = fd
	}
	return parent, nil
}

// Prepare resolves subPath inside volumePath and bind-mounts it at
// target, creating target. The returned error wraps ErrEscape when the
// subPath leads out of the volume.
func Prepare(ctx context.Context, ops hostops.Host, volumePath, subPath, target string) error {
	if err := Validate(subPath); err != nil {
		return err
	}
	root, err := unix.Open(volumePath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open volume", Path: volumePath, Err: err}
	}
	defer unix.Close(root)
	var rootSt unix.Stat_t
	if err := unix.Fstat(root, &rootSt); err != nil {
		return &os.PathError{Op: "stat volume", Path: volumePath, Err: err}
	}
	fd, err := open(root, subPath, rootSt.Mode&0o7777)
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("subpath %q not within volume path %q: %w", subPath, volumePath, ErrEscape)
	}
	if err != nil {
		return fmt.Errorf("subpath %q in volume path %q: %w", subPath, volumePath, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if done, err := alreadyMounted(ctx, ops, target, &st); err != nil || done {
		return err
	}
	if err := makeTarget(target, isDir); err != nil {
		return err
	}
	source := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := ops.BindMount(ctx, source, target, nil); err != nil {
		return fmt.Errorf("bind mount subpath %q: %w", subPath, err)
	}
	return nil
}

// alreadyMounted reports whether target is a mount of the object st
// describes; a mount of something else is removed.
func alreadyMounted(ctx context.Context, ops hostops.Host, target string, st *unix.Stat_t) (bool, error) {
	mounted, err := ops.IsMountPoint(target)
	if err != nil || !mounted {
		return false, err
	}
	var tst unix.Stat_t
	if err := unix.Stat(target, &tst); err == nil && tst.Dev == st.Dev && tst.Ino == st.Ino {
		return true, nil
	}
	if err := unmountAll(ctx, ops, target); err != nil {
		return false, err
	}
	return false, nil
}

func makeTarget(target string, isDir bool) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	fi, err := os.Lstat(target)
	switch {
	case err == nil && fi.IsDir() == isDir && fi.Mode()&os.ModeSymlink == 0:
		return nil
	case err == nil:
		if err := os.Remove(target); err != nil {
			return err
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if isDir {
		return os.Mkdir(target, 0o750)
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	return f.Close()
}

func unmountAll(ctx context.Context, ops hostops.Host, target string) error {
	for range 16 {
		mounted, err := ops.IsMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := ops.Unmount(ctx, target); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: still mounted after 16 unmounts", target)
}

// Clean unmounts and removes every subPath target of volume in the pod
// directory. It removes only placeholders (empty directories, files) and
// never a directory that is still a mount point.
func Clean(ctx context.Context, ops hostops.Host, podDir, volume string) error {
	vdir := filepath.Join(podDir, "volume-subpaths", volume)
	containers, err := os.ReadDir(vdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range containers {
		cdir := filepath.Join(vdir, c.Name())
		targets, err := os.ReadDir(cdir)
		if err != nil {
			return err
		}
		for _, t := range targets {
			p := filepath.Join(cdir, t.Name())
			if err := unmountAll(ctx, ops, p); err != nil {
				return err
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := os.Remove(cdir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(vdir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
