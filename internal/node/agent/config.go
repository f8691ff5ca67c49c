package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Config configures a node agent.
type Config struct {
	// NodeName is the Node's name and its kubernetes.io/hostname label.
	NodeName string
	// RootDir is the agent's root directory (--root-dir): pods/,
	// plugins/, plugins_registry/, volume-plugins/, pki/, runtime/.
	RootDir string
	// LogDir holds container logs: <LogDir>/pods/<ns>_<pod>_<uid>/...
	LogDir string
	// ImagesDir holds local images: <ImagesDir>/<name>/rootfs.
	ImagesDir string

	// Kubeconfig names the API server and its CA and, while the node has
	// no certificate of its own, the bootstrap credentials it asks for
	// one with. Empty when Server, CAData and IssueCertificate are set.
	Kubeconfig string
	// Server and CAData reach the API without a kubeconfig.
	Server string
	CAData []byte
	// IssueCertificate gives the node its first client certificate
	// without the CSR API: `up` signs it with the CA in process.
	IssueCertificate func(node string) (certPEM, keyPEM []byte, err error)

	// KubeletPort is the port of the kubelet API (default 10250).
	KubeletPort int
	// NodeIP is the node's address: the Node's InternalIP and every
	// pod's IP (pods use host networking). Default: the address the
	// host reaches the API server from.
	NodeIP string

	// KubeAPIQPS and KubeAPIBurst limit the agent's requests to the API;
	// EventQPS and EventBurst its events, on a client of their own; the
	// Node's status and Lease go on a third, unlimited one. Upstream's
	// kubelet defaults: 50/100 and 50/100.
	KubeAPIQPS   float32
	KubeAPIBurst int
	EventQPS     float32
	EventBurst   int

	// StatusUpdateFrequency is how often the Node's status is written
	// when nothing changed; LeaseRenewInterval how often its Lease is.
	StatusUpdateFrequency time.Duration
	LeaseRenewInterval    time.Duration
	LeaseDuration         time.Duration

	// EmptyDirBtrfsDir, when set, is a directory on btrfs (up: in the
	// built-in driver's pool) where disk emptyDirs with a sizeLimit become
	// quota-limited subvolumes; without it such a limit is enforced by
	// eviction.
	EmptyDirBtrfsDir string

	// AllowGitRepoVolumes turns on volplane's safe clone for gitRepo
	// volumes (--allow-gitrepo-volumes); off, they are refused as
	// upstream refuses them.
	AllowGitRepoVolumes bool
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("node agent: no node name")
	}
	if c.RootDir == "" {
		return errors.New("node agent: no root dir")
	}
	abs, err := filepath.Abs(c.RootDir)
	if err != nil {
		return fmt.Errorf("node agent: root dir: %w", err)
	}
	c.RootDir = abs
	if c.LogDir == "" {
		c.LogDir = filepath.Join(filepath.Dir(abs), "logs")
	}
	if c.ImagesDir == "" {
		c.ImagesDir = filepath.Join(filepath.Dir(abs), "images")
	}
	if c.Kubeconfig == "" && (c.Server == "" || c.CAData == nil || c.IssueCertificate == nil) {
		return errors.New("node agent: no kubeconfig")
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = 10250
	}
	if c.KubeletPort < 0 || c.KubeletPort > 65535 {
		return fmt.Errorf("node agent: --kubelet-port %d out of range", c.KubeletPort)
	}
	if c.NodeIP != "" && net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("node agent: --node-ip %q is not an IP address", c.NodeIP)
	}
	if c.KubeAPIQPS == 0 {
		c.KubeAPIQPS, c.KubeAPIBurst = 50, 100
	}
	if c.EventQPS == 0 {
		c.EventQPS, c.EventBurst = 50, 100
	}
	if c.KubeAPIQPS < 0 || c.KubeAPIBurst < 1 || c.EventQPS < 0 || c.EventBurst < 1 {
		return fmt.Errorf("node agent: API limits %v/%d, events %v/%d: each QPS must be > 0 and each burst >= 1", c.KubeAPIQPS, c.KubeAPIBurst, c.EventQPS, c.EventBurst)
	}
	if c.StatusUpdateFrequency == 0 {
		c.StatusUpdateFrequency = time.Minute
	}
	if c.LeaseRenewInterval == 0 {
		c.LeaseRenewInterval = 10 * time.Second
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	for _, d := range []string{c.RootDir, c.LogDir, c.ImagesDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("node agent: %w", err)
		}
	}
	return nil
}
