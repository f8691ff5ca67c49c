package secret

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/apivolume"
	"volplane/internal/node/plugins/objectcache"
)

// PluginName is upstream's name for the secret plugin.
const PluginName = "kubernetes.io/secret"

// Plugin is the secret volume plugin. Its volumes live on a tmpfs.
type Plugin struct {
	apivolume.Base
	objects *objectcache.Cache
}

var (
	_ plugins.Remounter  = (*Plugin)(nil)
	_ apivolume.Notifier = (*Plugin)(nil)
)

// New returns the plugin reading secrets through objects, a cache it may
// share with the configMap and projected plugins. With objects nil, Init
// makes one from the host's client.
func New(objects *objectcache.Cache) *Plugin {
	return &Plugin{Base: apivolume.Base{PluginName: PluginName}, objects: objects}
}

// Init implements plugins.Plugin.
func (p *Plugin) Init(host *plugins.Host) error {
	if err := p.InitBase(host); err != nil {
		return err
	}
	if p.objects == nil {
		if host.Client == nil {
			return fmt.Errorf("%s: the host has no API client", PluginName)
		}
		p.objects = objectcache.New(host.Client, host.Log)
	}
	p.objects.OnChange(p.Notify)
	p.Release = p.objects.Release
	return nil
}

// CanSupport implements plugins.Plugin.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec != nil && spec.Volume != nil && spec.Volume.Secret != nil
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	if !p.CanSupport(args.Spec) || args.Pod == nil {
		return fmt.Errorf("%s: not a secret volume", PluginName)
	}
	src := args.Spec.Volume.Secret
	name, err := p.Track(args)
	if err != nil {
		return err
	}
	optional := src.Optional != nil && *src.Optional
	s, err := p.objects.Secret(ctx, name, args.Pod.Namespace, src.SecretName)
	if err != nil {
		if !apierrors.IsNotFound(err) || !optional {
			return err
		}
		s = &corev1.Secret{}
	}
	payload, err := MakePayload(src.Items, s, src.DefaultMode, optional)
	if err != nil {
		return err
	}
	return p.Write(ctx, args, true, payload)
}
