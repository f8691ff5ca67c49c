package local

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/local-volume"

// Plugin is the local volume plugin.
type Plugin struct{ host *plugins.Host }

var (
	_ plugins.Plugin      = (*Plugin)(nil)
	_ plugins.BlockMapper = (*Plugin)(nil)
)

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

func (p *Plugin) Name() string { return PluginName }

func (p *Plugin) Init(host *plugins.Host) error { p.host = host; return nil }

func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec.PV != nil && spec.PV.Spec.Local != nil
}

func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	return PluginName + "/" + spec.PV.Name, nil
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	path := args.Spec.PV.Spec.Local.Path
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("local volume %s: %w", args.Spec.PV.Name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("local volume %s: path %s is not a directory; a block device is used with volumeMode: Block", args.Spec.PV.Name, path)
	}
	mounted, err := p.host.Ops.IsMountPoint(args.Dir)
	if err != nil {
		return err
	}
	if !mounted {
		var opts []string
		if args.Spec.ReadOnly {
			opts = []string{"ro"}
		}
		if err := p.host.Ops.BindMount(ctx, path, args.Dir, opts); err != nil {
			return err
		}
	}
	if args.Spec.ReadOnly {
		return nil
	}
	return plugins.SetVolumeOwnership(args.Dir, args.FSGroup, args.FSGroupChangePolicy, false)
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

// BlockDevice implements plugins.BlockMapper.
func (p *Plugin) BlockDevice(ctx context.Context, spec *plugins.Spec) (string, error) {
	path := spec.PV.Spec.Local.Path
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("local volume %s: %w", spec.PV.Name, err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("local volume %s: path %s is not a block device", spec.PV.Name, path)
	}
	return path, nil
}
