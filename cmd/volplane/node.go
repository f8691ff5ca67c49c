package main

import (
	"errors"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/component"
	"volplane/internal/node/agent"
)

// nodeFlags configure a node agent, in `up` and in `node`.
type nodeFlags struct {
	name         string
	kubeletPort  int
	nodeIP       string
	allowGitRepo bool
	apiQPS       float32
	apiBurst     int
	eventQPS     float32
	eventBurst   int
	local        localPVFlags
}

func (f *nodeFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "node-name", "", "this machine's node name (default: hostname)")
	fs.IntVar(&f.kubeletPort, "kubelet-port", 10250, "port of the kubelet API (logs, exec); several agents on one machine each need their own")
	fs.StringVar(&f.nodeIP, "node-ip", "", "the node's address, and its pods' (default: the address that reaches the API server)")
	fs.BoolVar(&f.allowGitRepo, "allow-gitrepo-volumes", false, "clone gitRepo volumes with volplane's safe clone (hooks and config-driven commands off); upstream refuses them since v1.36")
	fs.Float32Var(&f.apiQPS, "kube-api-qps", 50, "queries per second the node agent may send the API, as the kubelet's flag")
	fs.IntVar(&f.apiBurst, "kube-api-burst", 100, "burst of the node agent's requests to the API")
	fs.Float32Var(&f.eventQPS, "event-qps", 50, "events per second the node agent may post, on a client of their own")
	fs.IntVar(&f.eventBurst, "event-burst", 100, "burst of the node agent's events")
	f.local.add(fs)
}

// config is the agent's Config for a data dir laid out as `up`'s:
// DIR/kubelet, DIR/logs, DIR/images.
func (f *nodeFlags) config(dataDir string) agent.Config {
	return agent.Config{
		NodeName:    f.name,
		RootDir:     filepath.Join(dataDir, "kubelet"),
		LogDir:      filepath.Join(dataDir, "logs"),
		ImagesDir:   filepath.Join(dataDir, "images"),
		KubeletPort: f.kubeletPort,
		NodeIP:      f.nodeIP,

		KubeAPIQPS:   f.apiQPS,
		KubeAPIBurst: f.apiBurst,
		EventQPS:     f.eventQPS,
		EventBurst:   f.eventBurst,

		AllowGitRepoVolumes: f.allowGitRepo,
	}
}

func newNodeCommand() *cobra.Command {
	var (
		common     commonFlags
		node       nodeFlags
		kubeconfig string
		rootDir    string
		localKC    string
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node agent that joins a server: the Node, its volumes and its pods",
		Long: `Run a node agent that joins a volplane server (or any cluster whose API
accepts it). --kubeconfig names the API and, until the node has a
certificate of its own, the bootstrap token it asks for one with (the
kubeconfig 'volplane server' writes as DIR/bootstrap-kubeconfig).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				return errors.New("--kubeconfig is required")
			}
			if node.name == "" {
				return errors.New("--node-name is required")
			}
			if node.local.discoveryDir != "" && localKC == "" {
				return errNoProvisionerKubeconfig
			}
			ctx, stop, log, err := common.setup(cmd)
			if err != nil {
				return err
			}
			defer stop()
			c := node.config(filepath.Dir(rootDir))
			c.RootDir, c.Kubeconfig = rootDir, kubeconfig
			r := component.Runner{
				Components: []component.Component{
					nodeComponent(func() agent.Config { return c }),
					node.local.component(node.name, func() (*rest.Config, error) { return clientcmd.BuildConfigFromFlags("", localKC) }),
				},
				Ready: func() { log.Info("ready", "node", node.name, "root-dir", rootDir) },
			}
			return r.Run(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API to join: bootstrap token or the node's own credentials")
	fs.StringVar(&rootDir, "root-dir", "/var/lib/volplane/kubelet", "the agent's root directory: pods, plugins, plugins_registry, pki")
	fs.StringVar(&localKC, "local-provisioner-kubeconfig", "", "kubeconfig of the local static provisioner's own identity (what 'volplane server' writes as DIR/local-provisioner-kubeconfig); needed with --local-discovery-dir")
	common.add(fs)
	node.add(fs)
	return cmd
}
