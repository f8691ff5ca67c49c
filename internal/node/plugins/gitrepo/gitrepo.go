package gitrepo

import (
	"context"
	"errors"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/apivolume"
)

// PluginName is upstream's name for the gitRepo plugin.
const PluginName = "kubernetes.io/git-repo"

// ErrDisabled is SetUp's error, in upstream's words.
var ErrDisabled = errors.New("git-repo volume plugin has been disabled; if necessary, it may be re-enabled by enabling the feature-gate `GitRepoVolumeDriver`")

// Plugin is the gitRepo plugin that refuses.
type Plugin struct {
	apivolume.Base
}

var _ plugins.Plugin = (*Plugin)(nil)

// New returns the plugin.
func New() *Plugin { return &Plugin{Base: apivolume.Base{PluginName: PluginName}} }

// Init implements plugins.Plugin.
func (p *Plugin) Init(host *plugins.Host) error { return p.InitBase(host) }

// CanSupport implements plugins.Plugin.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec != nil && spec.Volume != nil && spec.Volume.GitRepo != nil
}

// SetUp implements plugins.Plugin: always ErrDisabled.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error { return ErrDisabled }
