package agent

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"volplane/internal/logging"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/volumemanager"
)

// Agent is a running node agent.
type Agent struct {
	cfg Config
	id  *identity
	// client is the agent's API client; events go through their own
	// (Config.EventQPS), and the Node's status and Lease through an
	// unlimited one, as the kubelet's heartbeat client, so a burst of pod
	// work never delays the heartbeat that keeps the node Ready.
	client, events, heartbeat kubernetes.Interface
	nodeIP                    string
	runtimeVersion            string
	volumes                   volumemanager.Interface
	// csiDrivers are the CSI drivers registered on this node, for the
	// agent's lifetime: the plugin watcher fills it, the CSI volume
	// plugin reads it.
	csiDrivers *csidrivers.Registry
	// recorder posts the agent's events (source kubelet), set by
	// startParts.
	recorder record.EventRecorder
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
	a := &Agent{cfg: cfg, id: id, runtimeVersion: "volplane://0.1.0", csiDrivers: &csidrivers.Registry{}}
	if err := a.newClients(); err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
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
	a.recordNodeEvent("Starting", "Starting kubelet.")
	inUse, err := a.updateStatus(ctx)
	if err != nil {
		log.Warn("updating the node status; retrying", "err", err)
	}
	done := make(chan struct{}, 2)
	go func() { a.runLease(ctx); done <- struct{}{} }()
	go func() { a.runStatus(ctx, inUse); done <- struct{}{} }()
	log.Info("node registered", "ip", a.nodeIP, "kubelet-port", cfg.KubeletPort)
	ready()

	<-ctx.Done()
	for range 2 {
		<-done
	}
	waitParts()
	return nil
}

// newClients makes the agent's three API clients from its identity.
func (a *Agent) newClients() error {
	var err error
	if a.client, err = kubernetes.NewForConfig(a.id.rest); err != nil {
		return err
	}
	events := rest.CopyConfig(a.id.rest)
	events.QPS, events.Burst = a.cfg.EventQPS, a.cfg.EventBurst
	if a.events, err = kubernetes.NewForConfig(events); err != nil {
		return err
	}
	heartbeat := rest.CopyConfig(a.id.rest)
	heartbeat.QPS = -1 // no rate limiter
	heartbeat.Timeout = min(a.cfg.LeaseDuration, a.cfg.StatusUpdateFrequency)
	a.heartbeat, err = kubernetes.NewForConfig(heartbeat)
	return err
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
