package reconstruction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
)

// Config is what reconstruction works with.
type Config struct {
	Store   Store
	Ops     hostops.Host
	Actual  *cache.Actual
	Plugins []plugins.Plugin
	Log     *slog.Logger
}

// Result says what Reconstruct found.
type Result struct {
	// Volumes is how many pod volumes were put in the actual state.
	Volumes int
	// Devices is how many global mounts were (certain or not).
	Devices int
	// Unknown are records naming a plugin this node does not have, or
	// that cannot be read; they are left alone.
	Unknown []string
}

func pluginByName(ps []plugins.Plugin, name string) plugins.Plugin {
	for _, p := range ps {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Reconstruct fills the actual state from the records on disk.
func Reconstruct(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	devs, bad, err := cfg.Store.DeviceRecords()
	if err != nil {
		return res, fmt.Errorf("read device records: %w", err)
	}
	res.Unknown = append(res.Unknown, bad...)
	for _, d := range devs {
		p := pluginByName(cfg.Plugins, d.Plugin)
		if p == nil {
			res.Unknown = append(res.Unknown, d.Plugin+" "+d.VolumeName)
			continue
		}
		// Uncertain whether or not its path is a mount point, as
		// upstream's reconstruction marks every device: a crash may have
		// cut MountDevice short after the driver mounted (NodeStage can
		// do more work after its mount), and a path that is no mount
		// point may still hold MountDevice's work elsewhere (a raw block
		// staging, a driver without STAGE_UNSTAGE, a loop device). Only
		// MountDevice again (NodeStage is idempotent: nothing is mounted
		// twice) or UnmountDevice can tell.
		cfg.Actual.MarkDeviceUncertain(d.VolumeName, p, d.Spec(), d.MountPath)
		res.Devices++
	}
	pods, err := os.ReadDir(filepath.Join(cfg.Store.Root, "pods"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	for _, e := range pods {
		if !e.IsDir() {
			continue
		}
		uid := types.UID(e.Name())
		recs, bad, err := cfg.Store.PodRecords(uid)
		if err != nil {
			return res, fmt.Errorf("read records of pod %s: %w", uid, err)
		}
		res.Unknown = append(res.Unknown, bad...)
		for _, r := range recs {
			p := pluginByName(cfg.Plugins, r.Plugin)
			if p == nil {
				res.Unknown = append(res.Unknown, r.Plugin+" "+r.VolumeName)
				continue
			}
			cfg.Actual.MarkMounted(cache.MountedVolume{
				VolumeName: r.VolumeName, OuterName: r.OuterName, PodUID: r.PodUID, Plugin: p,
				Spec: r.Spec(), Dir: r.Dir, HostPath: r.HostPath, DevicePath: r.DevicePath,
				ReadOnly: r.ReadOnly, Uncertain: true,
			})
			res.Volumes++
		}
	}
	if cfg.Log != nil {
		cfg.Log.InfoContext(ctx, "volumes reconstructed", "volumes", res.Volumes, "devices", res.Devices,
			"unknown", len(res.Unknown))
	}
	return res, nil
}

// Orphan is a pod directory CleanOrphans kept.
type Orphan struct {
	Dir    string
	Mounts []string
}

// CleanOrphans removes the directory of every pod for which keep returns
// false, unless something is mounted beneath it; those are returned.
func CleanOrphans(ctx context.Context, store Store, ops hostops.Host, keep func(types.UID) bool) ([]Orphan, error) {
	entries, err := os.ReadDir(filepath.Join(store.Root, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var kept []Orphan
	var errs []error
	for _, e := range entries {
		uid := types.UID(e.Name())
		if !e.IsDir() || keep(uid) {
			continue
		}
		dir := store.PodDir(uid)
		mounts, err := plugins.MountsUnder(ops, dir)
		if err != nil {
			return kept, err
		}
		if len(mounts) > 0 {
			kept = append(kept, Orphan{Dir: dir, Mounts: mounts})
			continue
		}
		if err := removeSameDevice(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return kept, errors.Join(errs...)
}

// removeSameDevice removes dir and everything beneath it, refusing to
// descend into a directory on another device (a mount that appeared
// after the mount table was read).
func removeSameDevice(dir string) error {
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return removeTree(dir, root.Dev)
}

func removeTree(path string, dev uint64) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if st.Dev != dev {
			return fmt.Errorf("%s is on another filesystem (a mount): not removed", path)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := removeTree(filepath.Join(path, e.Name()), dev); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
