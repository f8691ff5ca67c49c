package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"
)

// Config is the one configuration every embedded upstream component's
// flags are derived from.
type Config struct {
	// DataDir holds etcd/, pki/, run/ and kubeconfig.
	DataDir string
	// Listen is the API's HOST:PORT. Nothing else listens on the network.
	Listen string
	// EtcdServers are external etcd client URLs; empty runs etcd in this
	// process under DataDir/etcd.
	EtcdServers []string
	// ServiceCIDR is the Service cluster IP range.
	ServiceCIDR string
	// LeaderElect makes kube-controller-manager elect a leader, for
	// several servers on one etcd.
	LeaderElect bool
	// ReadyTimeout bounds the wait for /readyz.
	ReadyTimeout time.Duration
	// SchedulerPlugins are volplane's plugins for the embedded
	// scheduler, registered and enabled in its profile.
	SchedulerPlugins []SchedulerPlugin
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("no data dir")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	c.DataDir = abs
	if c.Listen == "" {
		c.Listen = "127.0.0.1:6443"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("--listen %q: host must be an IP address", c.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("--listen %q: bad port", c.Listen)
	}
	for _, s := range c.EtcdServers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix") || (u.Host == "" && u.Path == "") {
			return fmt.Errorf("--etcd-servers: %q is not an etcd client URL", s)
		}
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.43.0.0/16"
	}
	if _, _, err := net.ParseCIDR(c.ServiceCIDR); err != nil {
		return fmt.Errorf("service CIDR: %w", err)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 2 * time.Minute
	}
	return nil
}

// KubeconfigPath is where the admin kubeconfig is written once the API
// is ready.
func (c *Config) KubeconfigPath() string { return filepath.Join(c.DataDir, "kubeconfig") }

func (c *Config) pkiDir() string  { return filepath.Join(c.DataDir, "pki") }
func (c *Config) etcdDir() string { return filepath.Join(c.DataDir, "etcd") }
func (c *Config) runDir() string  { return filepath.Join(c.DataDir, "run") }

// serverURL is the URL in-process clients and the kubeconfig use: the
// listen address, or loopback when it listens on every address.
func (c *Config) serverURL() string {
	host, port, _ := net.SplitHostPort(c.Listen)
	if ip := net.ParseIP(host); ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return "https://" + net.JoinHostPort(host, port)
}
