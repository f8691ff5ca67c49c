package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/image"

// Config configures the plugin.
type Config struct {
	// ImagesDir is DIR/images.
	ImagesDir string
}

// Validate checks the config.
func (c *Config) Validate() error {
	if !filepath.IsAbs(c.ImagesDir) {
		return fmt.Errorf("image: ImagesDir %q must be an absolute path", c.ImagesDir)
	}
	return nil
}

// Plugin is the image volume plugin.
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

func (p *Plugin) Init(host *plugins.Host) error { p.host = host; return nil }

func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec.PV == nil && spec.Volume != nil && spec.Volume.Image != nil
}

func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	return plugins.PodScopedVolumeName(PluginName, pod, spec), nil
}

// Rootfs is where the image's filesystem is: ImagesDir/<name>/rootfs,
// with "/" and ":" in the name as "_".
func (p *Plugin) Rootfs(reference string) string {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(reference)
	return filepath.Join(p.cfg.ImagesDir, name, "rootfs")
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	ref := args.Spec.Volume.Image.Reference
	if ref == "" {
		return errors.New("image volume has no reference")
	}
	rootfs := p.Rootfs(ref)
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return fmt.Errorf("image %q has no rootfs: %s is not a directory (images are DIR/images/<name>/rootfs)", ref, rootfs)
	}
	mounted, err := p.host.Ops.IsMountPoint(args.Dir)
	if err != nil || mounted {
		return err
	}
	return p.host.Ops.BindMount(ctx, rootfs, args.Dir, []string{"ro", "nosuid", "nodev"})
}

// TearDown implements plugins.Plugin.
func (p *Plugin) TearDown(ctx context.Context, dir string) error {
	for range 16 {
		mounted, err := p.host.Ops.IsMountPoint(dir)
		if err != nil || !mounted {
			return err
		}
		if err := p.host.Ops.Unmount(ctx, dir); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s still mounted after 16 unmounts", dir)
}
