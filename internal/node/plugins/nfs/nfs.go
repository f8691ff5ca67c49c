package nfs

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/plugins"
)

// PluginName is upstream's name.
const PluginName = "kubernetes.io/nfs"

// Plugin is the nfs plugin.
type Plugin struct{ host *plugins.Host }

var _ plugins.Plugin = (*Plugin)(nil)

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

func (p *Plugin) Name() string { return PluginName }

func (p *Plugin) Init(host *plugins.Host) error { p.host = host; return nil }

func source(spec *plugins.Spec) *corev1.NFSVolumeSource {
	if spec.PV != nil {
		return spec.PV.Spec.NFS
	}
	if spec.Volume != nil {
		return spec.Volume.NFS
	}
	return nil
}

func (p *Plugin) CanSupport(spec *plugins.Spec) bool { return source(spec) != nil }

func (p *Plugin) VolumeName(spec *plugins.Spec, pod *corev1.Pod) (string, error) {
	return plugins.PodScopedVolumeName(PluginName, pod, spec), nil
}

// MountArgs returns what SetUp passes to mount -t nfs: the source and
// the options.
func MountArgs(spec *plugins.Spec) (string, []string) {
	src := source(spec)
	server := src.Server
	if strings.Contains(server, ":") && !strings.HasPrefix(server, "[") {
		server = "[" + server + "]"
	}
	var opts []string
	if spec.PV != nil {
		opts = append(opts, spec.PV.Spec.MountOptions...)
	}
	if src.ReadOnly || spec.ReadOnly {
		opts = append(opts, "ro")
	}
	return server + ":" + src.Path, opts
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	mounted, err := p.host.Ops.IsMountPoint(args.Dir)
	if err != nil || mounted {
		return err
	}
	source, opts := MountArgs(args.Spec)
	if err := p.host.Ops.MountCommand(ctx, source, args.Dir, "nfs", opts); err != nil {
		return fmt.Errorf("mount failed: %w", err)
	}
	return nil
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
