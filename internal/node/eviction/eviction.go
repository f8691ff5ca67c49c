package eviction

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
)

// Pods is what eviction needs of the pod workers.
type Pods interface {
	// RunningPods are the pods whose containers may be running.
	RunningPods() []*corev1.Pod
	// Evict stops a pod for good with reason Evicted and message.
	Evict(uid types.UID, message string) bool
}

// Config configures the monitor.
type Config struct {
	// RootDir is the agent's root directory (pods live under it).
	RootDir string
	Pods    Pods
	Ops     hostops.Host
	// Interval is how often usage is measured; default 10 s, upstream's
	// housekeeping interval.
	Interval time.Duration
	Log      *slog.Logger
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.RootDir == "" || c.Pods == nil || c.Ops == nil {
		return errors.New("eviction: RootDir, Pods and Ops are required")
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Run measures and evicts every Interval until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			check(&cfg)
		}
	}
}

// check measures the limited disk emptyDirs of every running pod once
// and evicts the pods that outgrew one.
func check(cfg *Config) {
	for _, pod := range cfg.Pods.RunningPods() {
		for _, v := range LimitedEmptyDirs(pod) {
			dir := plugins.PodVolumeDir(cfg.RootDir, pod.UID, emptydir.PluginName, v.Name)
			if quota, err := cfg.Ops.IsMountPoint(dir); err != nil || quota {
				continue // enforced by its qgroup, or not there (yet)
			}
			used, err := Usage(dir)
			if err != nil {
				cfg.Log.Warn("measuring an emptyDir", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "err", err)
				continue
			}
			limit := v.EmptyDir.SizeLimit
			if used <= limit.Value() {
				continue
			}
			msg := fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", v.Name, limit.String())
			if cfg.Pods.Evict(pod.UID, msg) {
				cfg.Log.Info("evicting a pod", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "used", used, "limit", limit.String())
			}
			break
		}
	}
}

// LimitedEmptyDirs are the pod's disk emptyDir volumes with a sizeLimit.
func LimitedEmptyDirs(pod *corev1.Pod) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		ed := v.EmptyDir
		if ed == nil || ed.Medium != corev1.StorageMediumDefault || ed.SizeLimit == nil || ed.SizeLimit.Sign() <= 0 {
			continue
		}
		out = append(out, v)
	}
	return out
}

// Usage is the bytes the files under dir take on disk (allocated blocks,
// as du counts them), each inode once, without following symlinks or
// crossing into another filesystem. Files that vanish meanwhile are
// skipped.
func Usage(dir string) (int64, error) {
	root, err := os.Lstat(dir)
	if err != nil {
		return 0, err
	}
	dev := root.Sys().(*syscall.Stat_t).Dev
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if k := (inode{uint64(st.Dev), st.Ino}); !seen[k] {
			seen[k] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}
