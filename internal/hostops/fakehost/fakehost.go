package fakehost

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
)

// Host is the fake. The zero value is not usable; call New.
type Host struct {
	mu       sync.Mutex
	mounts   []hostops.MountPoint
	loops    map[string]string // device -> backing file
	nextLoop int
	fs       map[string]string // backing file -> filesystem type
	frozen   map[string]bool
	limits   map[string]int64
	props    map[string]string // path + "/" + name -> value
	calls    []string

	// Err, when set, is consulted before every method with its name; a
	// non-nil result is returned as the method's error.
	Err func(method string, args ...string) error
}

var _ hostops.Host = (*Host)(nil)

// New returns an empty fake host.
func New() *Host {
	return &Host{loops: map[string]string{}, fs: map[string]string{}, frozen: map[string]bool{},
		limits: map[string]int64{}, props: map[string]string{}}
}

func (h *Host) enter(method string, args ...string) error {
	h.calls = append(h.calls, method+" "+strings.Join(args, " "))
	if h.Err != nil {
		return h.Err(method, args...)
	}
	return nil
}

// Reboot forgets what a reboot forgets: mounts, loop devices, frozen
// filesystems. Files and the filesystems written on them stay.
func (h *Host) Reboot() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mounts = nil
	h.loops = map[string]string{}
	h.frozen = map[string]bool{}
}

// Calls returns the methods called so far, with their arguments.
func (h *Host) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// Limit returns the qgroup limit set on path.
func (h *Host) Limit(path string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.limits[path]
}

// Property returns a btrfs property set on path.
func (h *Host) Property(path, name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.props[path+"/"+name]
}

// Frozen reports whether the filesystem at mountpoint is frozen.
func (h *Host) Frozen(mountpoint string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.frozen[mountpoint]
}

// LoopDevices returns the attached devices and their files.
func (h *Host) LoopDevices() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for k, v := range h.loops {
		out[k] = v
	}
	return out
}

// resolve turns /proc/self/fd/N (a hostops.Target's Path) into the path
// it names, as the kernel does when it mounts there; the fake's mount
// table, like the real one, shows that path.
func resolve(path string) string {
	if strings.HasPrefix(path, "/proc/self/fd/") {
		if p, err := os.Readlink(path); err == nil {
			return p
		}
	}
	return path
}

func mustExist(path string) error {
	if _, err := os.Stat(path); err != nil {
		return &os.PathError{Op: "mount", Path: path, Err: unix.ENOENT}
	}
	return nil
}

func (h *Host) Mount(ctx context.Context, source, target, fstype string, options []string) error {
	target = resolve(target)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Mount", source, target, fstype); err != nil {
		return err
	}
	if _, err := hostops.ParseMountOptions(options); err != nil {
		return err
	}
	if err := mustExist(target); err != nil {
		return err
	}
	h.mounts = append(h.mounts, hostops.MountPoint{Path: target, Root: "/", Source: source, FSType: fstype, Options: options})
	return nil
}

// MountCommand records a mount as Mount does; its error comes from Err
// ("MountCommand", source, target, fstype, options joined by ",").
func (h *Host) MountCommand(ctx context.Context, source, target, fstype string, options []string) error {
	target = resolve(target)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("MountCommand", source, target, fstype, strings.Join(options, ",")); err != nil {
		return err
	}
	if err := mustExist(target); err != nil {
		return err
	}
	h.mounts = append(h.mounts, hostops.MountPoint{Path: target, Root: "/", Source: source, FSType: fstype, Options: options})
	return nil
}

func (h *Host) BindMount(ctx context.Context, source, target string, options []string) error {
	source, target = resolve(source), resolve(target)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BindMount", source, target); err != nil {
		return err
	}
	o, err := hostops.ParseMountOptions(options)
	if err != nil {
		return err
	}
	if len(o.Data) > 0 {
		return fmt.Errorf("%w: %v", hostops.ErrBadMountOption, o.Data)
	}
	if err := mustExist(target); err != nil {
		return err
	}
	mp := hostops.MountPoint{Path: target, Root: source, Source: "fake", FSType: "fake", Options: options}
	if _, ok := h.loops[source]; ok {
		mp.Root, mp.Source, mp.FSType = "/"+filepath.Base(source), "devtmpfs", "devtmpfs"
	}
	for i := len(h.mounts) - 1; i >= 0; i-- {
		if h.mounts[i].Path == source {
			mp.Root, mp.Source, mp.FSType = h.mounts[i].Root, h.mounts[i].Source, h.mounts[i].FSType
			break
		}
	}
	h.mounts = append(h.mounts, mp)
	return nil
}

func (h *Host) Unmount(ctx context.Context, target string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Unmount", target); err != nil {
		return err
	}
	for i := len(h.mounts) - 1; i >= 0; i-- {
		if h.mounts[i].Path == target {
			h.mounts = append(h.mounts[:i], h.mounts[i+1:]...)
			return nil
		}
	}
	return nil
}

func (h *Host) Mounts() ([]hostops.MountPoint, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Mounts"); err != nil {
		return nil, err
	}
	return append([]hostops.MountPoint(nil), h.mounts...), nil
}

func (h *Host) IsMountPoint(path string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.mounts {
		if m.Path == path {
			return true, nil
		}
	}
	return false, nil
}

// MakeMountPoint records a bind mount of path onto itself unless path is
// a mount point already; the fake has no propagation to model.
func (h *Host) MakeMountPoint(ctx context.Context, path string, p hostops.Propagation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("MakeMountPoint", path); err != nil {
		return err
	}
	if err := mustExist(path); err != nil {
		return err
	}
	for _, m := range h.mounts {
		if m.Path == path {
			return nil
		}
	}
	h.mounts = append(h.mounts, hostops.MountPoint{Path: path, Root: path, Source: "fake", FSType: "fake"})
	return nil
}

func (h *Host) LoopAttach(ctx context.Context, file string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("LoopAttach", file); err != nil {
		return "", err
	}
	for dev, f := range h.loops {
		if f == file {
			return dev, nil
		}
	}
	if _, err := os.Stat(file); err != nil {
		return "", err
	}
	dev := fmt.Sprintf("/dev/fakeloop%d", h.nextLoop)
	h.nextLoop++
	h.loops[dev] = file
	return dev, nil
}

func (h *Host) LoopFind(file string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for dev, f := range h.loops {
		if f == file {
			return dev, nil
		}
	}
	return "", nil
}

func (h *Host) LoopAutoclear(ctx context.Context, dev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.enter("LoopAutoclear", dev)
}

func (h *Host) LoopDetach(ctx context.Context, dev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("LoopDetach", dev); err != nil {
		return err
	}
	delete(h.loops, dev)
	return nil
}

func (h *Host) LoopRefreshSize(ctx context.Context, dev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("LoopRefreshSize", dev); err != nil {
		return err
	}
	if _, ok := h.loops[dev]; !ok {
		return fmt.Errorf("%s: %w", dev, unix.ENXIO)
	}
	return nil
}

func (h *Host) DeviceSize(dev string) (int64, error) {
	h.mu.Lock()
	file, ok := h.loops[dev]
	h.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%s: %w", dev, unix.ENXIO)
	}
	st, err := os.Stat(file)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (h *Host) backing(dev string) string {
	if f, ok := h.loops[dev]; ok {
		return f
	}
	return dev
}

func (h *Host) ProbeFilesystem(ctx context.Context, dev string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("ProbeFilesystem", dev); err != nil {
		return "", err
	}
	return h.fs[h.backing(dev)], nil
}

func (h *Host) Mkfs(ctx context.Context, dev, fstype string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Mkfs", dev, fstype); err != nil {
		return err
	}
	h.fs[h.backing(dev)] = fstype
	return nil
}

func (h *Host) GrowFilesystem(ctx context.Context, dev, mountpoint, fstype string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.enter("GrowFilesystem", dev, mountpoint, fstype)
}

func (h *Host) Freeze(ctx context.Context, mountpoint string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Freeze", mountpoint); err != nil {
		return err
	}
	if h.frozen[mountpoint] {
		return unix.EBUSY
	}
	h.frozen[mountpoint] = true
	return nil
}

func (h *Host) Thaw(ctx context.Context, mountpoint string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("Thaw", mountpoint); err != nil {
		return err
	}
	delete(h.frozen, mountpoint)
	return nil
}

func (h *Host) BtrfsQuotaEnable(ctx context.Context, path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.enter("BtrfsQuotaEnable", path)
}

func (h *Host) BtrfsSubvolumeCreate(ctx context.Context, path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsSubvolumeCreate", path); err != nil {
		return err
	}
	return os.Mkdir(path, 0o755)
}

func (h *Host) BtrfsSubvolumeSnapshot(ctx context.Context, src, dst string, readonly bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsSubvolumeSnapshot", src, dst); err != nil {
		return err
	}
	return copyTree(src, dst)
}

func (h *Host) BtrfsSubvolumeDelete(ctx context.Context, path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsSubvolumeDelete", path); err != nil {
		return err
	}
	delete(h.limits, path)
	return os.RemoveAll(path)
}

func (h *Host) BtrfsQgroupLimit(ctx context.Context, path string, bytes int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsQgroupLimit", path, fmt.Sprint(bytes)); err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	h.limits[path] = bytes
	return nil
}

func (h *Host) BtrfsQgroupUsage(ctx context.Context, path string) (int64, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsQgroupUsage", path); err != nil {
		return 0, 0, err
	}
	var used int64
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			used += info.Size()
		}
		return nil
	})
	return used, h.limits[path], err
}

func (h *Host) BtrfsSetProperty(ctx context.Context, path, name, value string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("BtrfsSetProperty", path, name, value); err != nil {
		return err
	}
	h.props[path+"/"+name] = value
	return nil
}

func (h *Host) CloneFile(ctx context.Context, src, dst string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enter("CloneFile", src, dst); err != nil {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	if t, ok := h.fs[src]; ok {
		h.fs[dst] = t
	}
	return nil
}

func (h *Host) ProjectQuotaSupported(ctx context.Context, path string) (bool, error) {
	return false, nil
}

func (h *Host) SetProjectQuota(ctx context.Context, dir string, id uint32, bytes int64) error {
	return hostops.ErrNotSupported
}

func (h *Host) ProjectQuotaUsage(ctx context.Context, dir string, id uint32) (int64, int64, error) {
	return 0, 0, hostops.ErrNotSupported
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Truncate(st.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.Mkdir(target, 0o755)
		}
		return copyFile(p, target)
	})
}
