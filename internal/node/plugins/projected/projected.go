package projected

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/apivolume"
	"volplane/internal/node/plugins/atomicwriter"
	"volplane/internal/node/plugins/configmap"
	"volplane/internal/node/plugins/downwardapi"
	"volplane/internal/node/plugins/objectcache"
	"volplane/internal/node/plugins/podcert"
	"volplane/internal/node/plugins/secret"
	"volplane/internal/node/plugins/token"
)

// PluginName is upstream's name for the projected plugin.
const PluginName = "kubernetes.io/projected"

// Config is what the plugin shares with the others. Both fields may be
// nil: Init then makes its own from the host's client.
type Config struct {
	// Objects reads configMaps, secrets and ClusterTrustBundles; share
	// it with the configMap and secret plugins.
	Objects *objectcache.Cache
	// Tokens requests service account tokens.
	Tokens *token.Manager
	// Certificates issues pod certificates.
	Certificates *podcert.Manager
}

// Plugin is the projected volume plugin. Its volumes live on a tmpfs.
type Plugin struct {
	apivolume.Base
	cfg Config
}

var (
	_ plugins.Remounter  = (*Plugin)(nil)
	_ apivolume.Notifier = (*Plugin)(nil)
)

// New returns the plugin.
func New(cfg Config) *Plugin {
	return &Plugin{Base: apivolume.Base{PluginName: PluginName}, cfg: cfg}
}

// Init implements plugins.Plugin.
func (p *Plugin) Init(host *plugins.Host) error {
	if err := p.InitBase(host); err != nil {
		return err
	}
	if p.cfg.Objects == nil || p.cfg.Tokens == nil || p.cfg.Certificates == nil {
		if host.Client == nil {
			return fmt.Errorf("%s: the host has no API client", PluginName)
		}
	}
	if p.cfg.Objects == nil {
		p.cfg.Objects = objectcache.New(host.Client, host.Log)
	}
	if p.cfg.Tokens == nil {
		tm, err := token.New(token.Config{Client: host.Client, Log: host.Log})
		if err != nil {
			return err
		}
		p.cfg.Tokens = tm
	}
	if p.cfg.Certificates == nil {
		cm, err := podcert.New(podcert.Config{Client: host.Client, NodeName: host.NodeName, Recorder: host.Recorder, Log: host.Log})
		if err != nil {
			return err
		}
		p.cfg.Certificates = cm
	}
	p.cfg.Objects.OnChange(p.Notify)
	p.cfg.Tokens.OnChange(p.Notify)
	p.cfg.Certificates.OnChange(p.Notify)
	p.Release = func(volumeName string) {
		p.cfg.Objects.Release(volumeName)
		p.cfg.Tokens.Release(volumeName)
		p.cfg.Certificates.Release(volumeName)
	}
	return nil
}

// CanSupport implements plugins.Plugin.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec != nil && spec.Volume != nil && spec.Volume.Projected != nil
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	if !p.CanSupport(args.Spec) || args.Pod == nil {
		return fmt.Errorf("%s: not a projected volume", PluginName)
	}
	name, err := p.Track(args)
	if err != nil {
		return err
	}
	payload, err := p.collect(ctx, name, args)
	if err != nil {
		return err
	}
	return p.Write(ctx, args, true, payload)
}

// collect gathers the payload of every source, as upstream's
// collectData: the errors of all sources are returned together.
func (p *Plugin) collect(ctx context.Context, volumeName string, args plugins.SetUpArgs) (atomicwriter.Payload, error) {
	src := args.Spec.Volume.Projected
	if src.DefaultMode == nil {
		return nil, fmt.Errorf("no defaultMode used, not even the default value for it")
	}
	pod := args.Pod
	payload := atomicwriter.Payload{}
	var errs []error
	add := func(part atomicwriter.Payload, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		for k, v := range part {
			payload[k] = v
		}
	}
	// Token, trust bundle and certificate files are 0600 and owned by
	// the pod's user when the pod runs as one user or has an fsGroup
	// (which then makes them 0640), as upstream.
	fsUser := FsUserFrom(pod)
	privateMode := *src.DefaultMode
	if fsUser != nil || args.FSGroup != nil {
		privateMode = 0o600
	}
	for i, s := range src.Sources {
		switch {
		case s.Secret != nil:
			optional := s.Secret.Optional != nil && *s.Secret.Optional
			obj, err := p.cfg.Objects.Secret(ctx, volumeName, pod.Namespace, s.Secret.Name)
			if err != nil {
				if !apierrors.IsNotFound(err) || !optional {
					errs = append(errs, err)
					continue
				}
				obj = &corev1.Secret{}
			}
			add(secret.MakePayload(s.Secret.Items, obj, src.DefaultMode, optional))
		case s.ConfigMap != nil:
			optional := s.ConfigMap.Optional != nil && *s.ConfigMap.Optional
			obj, err := p.cfg.Objects.ConfigMap(ctx, volumeName, pod.Namespace, s.ConfigMap.Name)
			if err != nil {
				if !apierrors.IsNotFound(err) || !optional {
					errs = append(errs, err)
					continue
				}
				obj = &corev1.ConfigMap{}
			}
			add(configmap.MakePayload(s.ConfigMap.Items, obj, src.DefaultMode, optional))
		case s.DownwardAPI != nil:
			var alloc corev1.ResourceList
			if downwardapi.NeedsAllocatable(s.DownwardAPI.Items) {
				a, err := downwardapi.NodeAllocatable(ctx, p.Host())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				alloc = a
			}
			add(downwardapi.CollectData(s.DownwardAPI.Items, pod, alloc, src.DefaultMode))
		case s.ServiceAccountToken != nil:
			tp := s.ServiceAccountToken
			tok, err := p.cfg.Tokens.Token(ctx, volumeName, token.Request{Pod: pod, Audience: tp.Audience, ExpirationSeconds: tp.ExpirationSeconds})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			payload[tp.Path] = atomicwriter.File{Data: []byte(tok), Mode: privateMode, FsUser: fsUser}
		case s.ClusterTrustBundle != nil:
			anchors, err := p.cfg.Objects.TrustAnchors(ctx, volumeName, s.ClusterTrustBundle)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			payload[s.ClusterTrustBundle.Path] = atomicwriter.File{Data: anchors, Mode: privateMode, FsUser: fsUser}
		case s.PodCertificate != nil:
			add(p.podCertificate(ctx, volumeName, pod, i, s.PodCertificate, privateMode, fsUser))
		}
	}
	return payload, utilerrors.NewAggregate(errs)
}

// FsUserFrom is the one user every container of pod runs as (its own
// runAsUser or the pod's), nil when a container names none or two differ.
func FsUserFrom(pod *corev1.Pod) *int64 {
	var podUser *int64
	if pod.Spec.SecurityContext != nil {
		podUser = pod.Spec.SecurityContext.RunAsUser
	}
	var contexts []*corev1.SecurityContext
	for _, c := range pod.Spec.InitContainers {
		contexts = append(contexts, c.SecurityContext)
	}
	for _, c := range pod.Spec.Containers {
		contexts = append(contexts, c.SecurityContext)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		contexts = append(contexts, c.SecurityContext)
	}
	var user *int64
	for _, sc := range contexts {
		u := podUser
		if sc != nil && sc.RunAsUser != nil {
			u = sc.RunAsUser
		}
		if u == nil || (user != nil && *user != *u) {
			return nil
		}
		user = u
	}
	return user
}
