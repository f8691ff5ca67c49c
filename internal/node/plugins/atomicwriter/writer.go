package atomicwriter

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// File is one file of a payload.
type File struct {
	// Data is the file's content.
	Data []byte
	// Mode holds the permission bits (the item's mode or defaultMode).
	Mode int32
	// FsUser, when set, is the file's owner.
	FsUser *int64
}

// Payload maps a path relative to the volume directory to its file.
type Payload map[string]File

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
	maxFileName    = 255
	maxPath        = 4096

	// Upstream's masks for a read-only volume with an fsGroup.
	groupRead = 0o440
	groupExec = 0o110
	setgid    = unix.S_ISGID
)

// Write makes dir hold exactly payload, atomically, and reports whether
// it wrote a new version. fsGroup, when set, is the group of every file.
// dir must exist.
func Write(dir string, payload Payload, fsGroup *int64) (bool, error) {
	clean, err := validate(payload)
	if err != nil {
		return false, err
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)

	current, err := readDataLink(dfd)
	if err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	write := true
	if current != "" {
		same, err := sameContent(dfd, current, clean, fsGroup)
		if err != nil {
			return false, fmt.Errorf("%s: compare with %s: %w", dir, current, err)
		}
		write = !same
	}
	if write {
		name, err := writeVersion(dfd, clean, fsGroup)
		if err != nil {
			return false, fmt.Errorf("%s: %w", dir, err)
		}
		current = name
	}
	if err := linkVisible(dfd, clean, fsGroup); err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	if err := removeStale(dfd, clean, current); err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	if fsGroup != nil {
		if err := ownRoot(dfd, *fsGroup); err != nil {
			return false, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return write, nil
}

// validate checks every path as upstream does and returns the payload
// with clean paths. A path that is also the parent of another one is
// refused, as it could not be both a file and a directory.
func validate(payload Payload) (map[string]File, error) {
	clean := make(map[string]File, len(payload))
	for p, f := range payload {
		if err := validatePath(p); err != nil {
			return nil, err
		}
		clean[filepath.Clean(p)] = f
	}
	for p := range clean {
		for dir := filepath.Dir(p); dir != "."; dir = filepath.Dir(dir) {
			if _, ok := clean[dir]; ok {
				return nil, fmt.Errorf("invalid payload: %q is a file and the parent of %q", dir, p)
			}
		}
	}
	return clean, nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("invalid path: must not be empty: %q", p)
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path: must be relative path: %s", p)
	case len(p) > maxPath:
		return fmt.Errorf("invalid path: must be less than or equal to %d characters", maxPath)
	}
	for _, item := range strings.Split(p, "/") {
		if item == ".." {
			return fmt.Errorf("invalid path: must not contain '..': %s", p)
		}
		if len(item) > maxFileName {
			return fmt.Errorf("invalid path: filenames must be less than or equal to %d characters", maxFileName)
		}
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid path: must not start with '..': %s", p)
	}
	return nil
}

// readDataLink returns the name ..data points to, "" when there is none.
// A ..data that is not a symlink to a sibling is refused.
func readDataLink(dfd int) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Readlinkat(dfd, dataDirName, buf)
	switch {
	case errors.Is(err, unix.ENOENT):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", dataDirName, err)
	}
	target := string(buf[:n])
	if !strings.HasPrefix(target, "..") || strings.Contains(target, "/") || target == ".." {
		return "", fmt.Errorf("%s points to %q, not to a version directory", dataDirName, target)
	}
	return target, nil
}

// wantMode is the mode a file or directory ends up with.
func wantMode(mode int32, dir bool, fsGroup *int64) uint32 {
	m := uint32(mode) & 0o777
	if fsGroup != nil {
		m |= groupRead
		if dir {
			m |= groupExec | setgid
		}
	}
	return m
}

// writeVersion writes clean into a new timestamped directory and swaps
// ..data to it. It returns the directory's name.
func writeVersion(dfd int, clean map[string]File, fsGroup *int64) (string, error) {
	name := time.Now().UTC().Format("..2006_01_02_15_04_05.") + fmt.Sprintf("%09d", rand.IntN(1e9))
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = removeAllAt(dfd, name)
		}
	}()
	tfd, err := openDir(dfd, name)
	if err != nil {
		return "", err
	}
	defer unix.Close(tfd)
	if err := own(tfd, 0o755, true, nil, fsGroup); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	paths := make([]string, 0, len(clean))
	for p := range clean {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := writeFile(tfd, p, clean[p], fsGroup); err != nil {
			return "", fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := unix.Unlinkat(dfd, newDataDirName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return "", fmt.Errorf("remove %s: %w", newDataDirName, err)
	}
	if err := unix.Symlinkat(name, dfd, newDataDirName); err != nil {
		return "", fmt.Errorf("link %s: %w", newDataDirName, err)
	}
	if fsGroup != nil {
		if err := unix.Fchownat(dfd, newDataDirName, -1, int(*fsGroup), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", fmt.Errorf("chown %s: %w", newDataDirName, err)
		}
	}
	if err := unix.Renameat(dfd, newDataDirName, dfd, dataDirName); err != nil {
		_ = unix.Unlinkat(dfd, newDataDirName, 0)
		return "", fmt.Errorf("rename %s to %s: %w", newDataDirName, dataDirName, err)
	}
	ok = true
	return name, nil
}

// writeFile creates p below the version directory tfd, making its parent
// directories.
func writeFile(tfd int, p string, f File, fsGroup *int64) error {
	parts := strings.Split(p, "/")
	pfd, err := unix.Dup(tfd)
	if err != nil {
		return err
	}
	defer func() { unix.Close(pfd) }()
	for _, d := range parts[:len(parts)-1] {
		err := unix.Mkdirat(pfd, d, 0o700)
		created := err == nil
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		next, err := openDir(pfd, d)
		if err != nil {
			return err
		}
		unix.Close(pfd)
		pfd = next
		if created {
			if err := own(pfd, 0o755, true, nil, fsGroup); err != nil {
				return err
			}
		}
	}
	fd, err := unix.Openat(pfd, parts[len(parts)-1], unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(fd), p)
	defer file.Close()
	if _, err := file.Write(f.Data); err != nil {
		return err
	}
	return own(fd, f.Mode, false, f.FsUser, fsGroup)
}

// own sets the owner and mode of the open file fd.
func own(fd int, mode int32, dir bool, fsUser, fsGroup *int64) error {
	uid, gid := -1, -1
	if fsUser != nil {
		uid = int(*fsUser)
	}
	if fsGroup != nil {
		gid = int(*fsGroup)
	}
	if uid != -1 || gid != -1 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// fchmod after fchown: chown clears setgid.
	if err := unix.Fchmod(fd, wantMode(mode, dir, fsGroup)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// ownRoot gives the volume directory the fsGroup as upstream does.
func ownRoot(dfd int, gid int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return err
	}
	if int64(st.Gid) != gid {
		if err := unix.Fchown(dfd, -1, int(gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	want := st.Mode&0o7777 | groupRead | groupExec | setgid
	if st.Mode&0o7777 != want || int64(st.Gid) != gid {
		if err := unix.Fchmod(dfd, want); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return nil
}

func openDir(dfd int, name string) (int, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", name, err)
	}
	return fd, nil
}

// topLevel returns the first component of each payload path.
func topLevel(clean map[string]File) map[string]bool {
	out := make(map[string]bool, len(clean))
	for p := range clean {
		top, _, _ := strings.Cut(p, "/")
		out[top] = true
	}
	return out
}

// linkVisible makes <top> -> ..data/<top> for every top-level name. A
// name that exists as something else than a symlink (a mount point made
// for a nested volume) is left alone, as upstream does.
func linkVisible(dfd int, clean map[string]File, fsGroup *int64) error {
	buf := make([]byte, maxPath)
	for top := range topLevel(clean) {
		want := dataDirName + "/" + top
		n, err := unix.Readlinkat(dfd, top, buf)
		switch {
		case err == nil && string(buf[:n]) == want:
			continue
		case err == nil:
			if err := unix.Unlinkat(dfd, top, 0); err != nil {
				return fmt.Errorf("remove %s: %w", top, err)
			}
		case errors.Is(err, unix.EINVAL):
			continue // not a symlink
		case !errors.Is(err, unix.ENOENT):
			return fmt.Errorf("read %s: %w", top, err)
		}
		if err := unix.Symlinkat(want, dfd, top); err != nil {
			return fmt.Errorf("link %s: %w", top, err)
		}
		if fsGroup != nil {
			if err := unix.Fchownat(dfd, top, -1, int(*fsGroup), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown %s: %w", top, err)
			}
		}
	}
	return nil
}

// removeStale removes the symlinks of names no longer in the payload,
// every version directory but current, and a leftover ..data_tmp.
func removeStale(dfd int, clean map[string]File, current string) error {
	names, err := readDirNames(dfd)
	if err != nil {
		return err
	}
	tops := topLevel(clean)
	buf := make([]byte, maxPath)
	for _, name := range names {
		switch {
		case name == dataDirName || name == current:
		case name == newDataDirName:
			if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		case strings.HasPrefix(name, ".."):
			if err := removeAllAt(dfd, name); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		case !tops[name]:
			n, err := unix.Readlinkat(dfd, name, buf)
			if err != nil || string(buf[:n]) != dataDirName+"/"+name {
				continue // not one of ours
			}
			if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
	}
	return nil
}

// readDirNames lists the directory open at dfd.
func readDirNames(dfd int) ([]string, error) {
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeAllAt removes name below dfd and everything under it without
// following symlinks.
func removeAllAt(dfd int, name string) error {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return unix.Unlinkat(dfd, name, 0)
	case err != nil:
		return err
	}
	names, err := readDirNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// sameContent reports whether the version directory name holds exactly
// clean, with the modes and owners Write would give it.
func sameContent(dfd int, name string, clean map[string]File, fsGroup *int64) (bool, error) {
	vfd, err := openDir(dfd, name)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(vfd)
	seen := 0
	same, err := compareDir(vfd, "", clean, fsGroup, &seen)
	if err != nil || !same {
		return false, err
	}
	return seen == len(clean), nil
}

func compareDir(fd int, prefix string, clean map[string]File, fsGroup *int64, seen *int) (bool, error) {
	names, err := readDirNames(fd)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		p := prefix + n
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, err
		}
		if fsGroup != nil && int64(st.Gid) != *fsGroup {
			return false, nil
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if _, ok := clean[p]; ok || st.Mode&0o7777 != wantMode(0o755, true, fsGroup) {
				return false, nil
			}
			sub, err := openDir(fd, n)
			if err != nil {
				return false, err
			}
			same, err := compareDir(sub, p+"/", clean, fsGroup, seen)
			unix.Close(sub)
			if err != nil || !same {
				return false, err
			}
		case unix.S_IFREG:
			f, ok := clean[p]
			if !ok || st.Mode&0o7777 != wantMode(f.Mode, false, fsGroup) || st.Size != int64(len(f.Data)) {
				return false, nil
			}
			if f.FsUser != nil && int64(st.Uid) != *f.FsUser {
				return false, nil
			}
			data, err := readAt(fd, n)
			if err != nil {
				return false, err
			}
			if !bytes.Equal(data, f.Data) {
				return false, nil
			}
			*seen++
		default:
			return false, nil
		}
	}
	return true, nil
}

func readAt(dfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}
