package agent

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"k8s.io/client-go/kubernetes"

	"volplane/internal/logging"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/volumemanager"
)

// Agent is a running node agent.
type Agent struct {
	cfg            Config
	id             *identity
	client         kubernetes.Interface
	nodeIP         string
	runtimeVersion string
	volumes        volumemanager.Interface
	// csiDrivers are the CSI drivers registered on this node, for the
	// agent's lifetime: the plugin watcher fills it, the CSI volume
	// plugin reads it.
	csiDrivers *csidrivers.Registry
}

// Run runs the node agent until ctx is done: it obtains the node's
// identity, registers the Node, keeps its Lease and status, and runs the
// pods bound to it. It calls ready once the Node is registered. Stopping
// the agent stops no container and unmounts no volume.
func Run(ctx context.Context, cfg Config, ready func()) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := logging.FromContext(ctx).With("component", "node", "node", cfg.NodeName)
	ctx = logging.NewContext(ctx, log)

	id, err := newIdentity(ctx, &cfg)
	if err != nil {
		return err
	}
	defer id.stop()
	client, err := kubernetes.NewForConfig(id.rest)
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a := &Agent{cfg: cfg, id: id, client: client, runtimeVersion: "volplane://0.1.0", csiDrivers: &csidrivers.Registry{}}
	if a.nodeIP = cfg.NodeIP; a.nodeIP == "" {
		a.nodeIP = outboundIP(id.rest.Host)
	}

	if err := a.registerNode(ctx); err != nil {
		return err
	}
	waitParts, err := a.startParts(ctx)
	if err != nil {
		return err
	}
	if err := a.updateStatus(ctx); err != nil {
		log.Warn("updating the node status; retrying", "err", err)
	}
	done := make(chan struct{}, 2)
	go func() { a.runLease(ctx); done <- struct{}{} }()
	go func() { a.runStatus(ctx); done <- struct{}{} }()
	log.Info("node registered", "ip", a.nodeIP, "kubelet-port", cfg.KubeletPort)
	ready()

	<-ctx.Done()
	for range 2 {
		<-done
	}
	waitParts()
	return nil
}

// outboundIP is the address this host reaches the API server from: the
// Node's InternalIP, and every pod's, when no --node-ip is given.
func outboundIP(server string) string {
	u, err := url.Parse(server)
	if err == nil {
		if c, err := net.DialTimeout("udp", u.Host, time.Second); err == nil {
			defer c.Close()
			return c.LocalAddr().(*net.UDPAddr).IP.String()
		}
	}
	return "127.0.0.1"
}
