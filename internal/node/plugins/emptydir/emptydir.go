package emptydir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/empty-dir"

// Config configures the plugin.
type Config struct {
	// BtrfsDir, when set, is a directory on a btrfs filesystem where
	// disk emptyDirs with a sizeLimit become quota-limited subvolumes.
	BtrfsDir string
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.BtrfsDir != "" && !filepath.IsAbs(c.BtrfsDir) {
		return fmt.Errorf("emptydir: BtrfsDir %q must be absolute", c.BtrfsDir)
	}
	return nil
}

// Plugin is the emptyDir plugin.
type Plugin struct {
	cfg  Config
	host *plugins.Host
}

var _ plugins.Plugin = (*Plugin)(nil)

// New returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Plugin{cfg: cfg}, nil
}

func (p *Plugin) Name() string { return PluginName }

// Init implements plugins.Plugin; with BtrfsDir it makes the directory
// and turns qgroup accounting on.
func (p *Plugin) Init(host *plugins.Host) error {
	p.host = host
	if p.cfg.BtrfsDir == "" {
		return nil
	}
	if err := os.MkdirAll(p.cfg.BtrfsDir, 0o700); err != nil {
		return err
	}
	return host.Ops.BtrfsQuotaEnable(context.Background(), p.cfg.BtrfsDir)
}

func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec.PV == nil && spec.Volume != nil && spec.Volume.EmptyDir != nil
}

func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	return plugins.PodScopedVolumeName(PluginName, pod, spec), nil
}

// subvolume is where a quota-limited disk emptyDir lives.
func (p *Plugin) subvolume(uid, name string) string {
	return filepath.Join(p.cfg.BtrfsDir, uid+"-"+name)
}

// podAndName recovers the pod UID and volume name from a pod volume
// directory <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>.
func podAndName(dir string) (uid, name string) {
	return filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(dir)))), filepath.Base(dir)
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	ed := args.Spec.Volume.EmptyDir
	mounted, err := p.host.Ops.IsMountPoint(args.Dir)
	if err != nil {
		return err
	}
	switch {
	case ed.Medium == corev1.StorageMediumMemory:
		if !mounted {
			opts := []string{"nosuid", "nodev"}
			if size := memorySize(ed.SizeLimit, args.Pod); size > 0 {
				opts = append(opts, "size="+strconv.FormatInt(size, 10))
			}
			if err := p.host.Ops.Mount(ctx, "tmpfs", args.Dir, "tmpfs", opts); err != nil {
				return err
			}
		}
	case ed.Medium == corev1.StorageMediumDefault:
		if err := p.setUpDisk(ctx, args, ed.SizeLimit, mounted); err != nil {
			return err
		}
	case strings.HasPrefix(string(ed.Medium), string(corev1.StorageMediumHugePages)):
		return fmt.Errorf("emptyDir medium %q is not supported: this node has no hugetlbfs", ed.Medium)
	default:
		return fmt.Errorf("unknown storage medium %q", ed.Medium)
	}
	if err := os.Chmod(args.Dir, 0o777); err != nil {
		return err
	}
	return plugins.SetVolumeOwnership(args.Dir, args.FSGroup, args.FSGroupChangePolicy, false)
}

func (p *Plugin) setUpDisk(ctx context.Context, args plugins.SetUpArgs, limit *resource.Quantity, mounted bool) error {
	if limit == nil || limit.IsZero() || mounted {
		return nil
	}
	if p.cfg.BtrfsDir == "" {
		p.host.Log.InfoContext(ctx, "emptyDir sizeLimit not enforced: no btrfs directory configured",
			"pod", args.Pod.Namespace+"/"+args.Pod.Name, "volume", args.Spec.Name, "sizeLimit", limit.String())
		return nil
	}
	sub := p.subvolume(string(args.Pod.UID), args.Spec.Name)
	if _, err := os.Stat(sub); errors.Is(err, os.ErrNotExist) {
		if err := p.host.Ops.BtrfsSubvolumeCreate(ctx, sub); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := p.host.Ops.BtrfsQgroupLimit(ctx, sub, limit.Value()); err != nil {
		return err
	}
	return p.host.Ops.BindMount(ctx, sub, args.Dir, []string{"nosuid", "nodev"})
}

// memorySize is the tmpfs size: sizeLimit, or the pod's memory limit
// when that is set and smaller.
func memorySize(sizeLimit *resource.Quantity, pod *corev1.Pod) int64 {
	var podLimit int64
	for _, c := range pod.Spec.Containers {
		l, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			podLimit = 0
			break
		}
		podLimit += l.Value()
	}
	size := int64(0)
	if sizeLimit != nil {
		size = sizeLimit.Value()
	}
	if podLimit > 0 && (size <= 0 || podLimit < size) {
		size = podLimit
	}
	return size
}

// TearDown implements plugins.Plugin.
func (p *Plugin) TearDown(ctx context.Context, dir string) error {
	for range 16 {
		mounted, err := p.host.Ops.IsMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
		if err := p.host.Ops.Unmount(ctx, dir); err != nil {
			return err
		}
	}
	if left, err := plugins.MountsUnder(p.host.Ops, dir); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("emptyDir %s still has mounts beneath it: %v", dir, left)
	}
	if p.cfg.BtrfsDir != "" {
		uid, name := podAndName(dir)
		if err := p.host.Ops.BtrfsSubvolumeDelete(ctx, p.subvolume(uid, name)); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return nil
}
