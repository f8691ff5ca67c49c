package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/apivolume"
)

// PluginName is upstream's name for the gitRepo plugin.
const PluginName = "kubernetes.io/git-repo"

// ErrDisabled is SetUp's error while clones are not allowed, in
// upstream's words.
var ErrDisabled = errors.New("git-repo volume plugin has been disabled; if necessary, it may be re-enabled by enabling the feature-gate `GitRepoVolumeDriver`")

// Config chooses between upstream's refusal and volplane's safe clone.
type Config struct {
	// Allow turns on the safe clone (--allow-gitrepo-volumes). Off, every
	// gitRepo volume is refused with ErrDisabled.
	Allow bool
	// Git is the git binary; "git" on PATH when empty.
	Git string
	// Protocols are the transports a clone may use; https, http and git
	// when empty. ext is refused; file only ever in tests: a pod must not
	// read the node's own repositories (CVE-2025-1767).
	Protocols []string
}

// Validate checks the config.
func (c *Config) Validate() error {
	for _, p := range c.Protocols {
		if p == "ext" {
			return fmt.Errorf("gitrepo: the ext protocol runs commands and is never allowed")
		}
	}
	return nil
}

// Plugin is the gitRepo plugin.
type Plugin struct {
	apivolume.Base
	cfg Config
}

var _ plugins.Plugin = (*Plugin)(nil)

// New returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Git == "" {
		cfg.Git = "git"
	}
	if len(cfg.Protocols) == 0 {
		cfg.Protocols = []string{"https", "http", "git"}
	}
	return &Plugin{Base: apivolume.Base{PluginName: PluginName}, cfg: cfg}, nil
}

// Init implements plugins.Plugin.
func (p *Plugin) Init(host *plugins.Host) error { return p.InitBase(host) }

// CanSupport implements plugins.Plugin.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec != nil && spec.Volume != nil && spec.Volume.GitRepo != nil
}

// SetUp implements plugins.Plugin: ErrDisabled, or the safe clone.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	if !p.cfg.Allow {
		return ErrDisabled
	}
	if !p.CanSupport(args.Spec) || args.Pod == nil {
		return fmt.Errorf("%s: not a gitRepo volume", PluginName)
	}
	return p.clone(ctx, args)
}

// TearDown implements plugins.Plugin: the volume directory and its ready
// marker go.
func (p *Plugin) TearDown(ctx context.Context, dir string) error {
	if err := p.Base.TearDown(ctx, dir); err != nil {
		return err
	}
	meta, err := metaDir(dir)
	if err != nil {
		return err
	}
	return os.RemoveAll(meta)
}
