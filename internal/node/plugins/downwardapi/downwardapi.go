package downwardapi

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/apivolume"
)

// PluginName is upstream's name for the downwardAPI plugin.
const PluginName = "kubernetes.io/downward-api"

// Plugin is the downwardAPI volume plugin.
type Plugin struct {
	apivolume.Base
}

var _ plugins.Remounter = (*Plugin)(nil)

// New returns the plugin.
func New() *Plugin {
	return &Plugin{Base: apivolume.Base{PluginName: PluginName}}
}

// Init implements plugins.Plugin.
func (p *Plugin) Init(host *plugins.Host) error { return p.InitBase(host) }

// CanSupport implements plugins.Plugin.
func (p *Plugin) CanSupport(spec *plugins.Spec) bool {
	return spec != nil && spec.Volume != nil && spec.Volume.DownwardAPI != nil
}

// SetUp implements plugins.Plugin.
func (p *Plugin) SetUp(ctx context.Context, args plugins.SetUpArgs) error {
	if !p.CanSupport(args.Spec) || args.Pod == nil {
		return fmt.Errorf("%s: not a downwardAPI volume", PluginName)
	}
	src := args.Spec.Volume.DownwardAPI
	var alloc corev1.ResourceList
	if NeedsAllocatable(src.Items) {
		var err error
		if alloc, err = NodeAllocatable(ctx, p.Host()); err != nil {
			return err
		}
	}
	payload, err := CollectData(src.Items, args.Pod, alloc, src.DefaultMode)
	if err != nil {
		return err
	}
	return p.Write(ctx, args, true, payload)
}

// NodeAllocatable reads this node's status.allocatable (a node may get
// its own Node object).
func NodeAllocatable(ctx context.Context, host *plugins.Host) (corev1.ResourceList, error) {
	if host.Client == nil {
		return nil, fmt.Errorf("no API client to read node %s", host.NodeName)
	}
	node, err := host.Client.CoreV1().Nodes().Get(ctx, host.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read node %s allocatable: %w", host.NodeName, err)
	}
	return node.Status.Allocatable, nil
}
