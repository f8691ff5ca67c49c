package pluginwatcher

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"volplane/internal/node/csidrivers"
)

// Defaults of Config.
const (
	DefaultRescanPeriod = time.Minute
	DefaultCallTimeout  = 10 * time.Second
	// DefaultCSITimeout bounds NodeGetInfo, upstream's csiTimeout.
	DefaultCSITimeout = 2 * time.Minute
)

// Config configures a Watcher.
type Config struct {
	// Dir is the registration directory, <root>/plugins_registry. It is
	// made (0750) when missing.
	Dir string
	// NodeName is this node: the Node patched and the CSINode written.
	NodeName string
	// Client is the API as the node (system:node:<name>).
	Client kubernetes.Interface
	// Drivers is the registry the watcher fills; the CSI volume plugin
	// reads it.
	Drivers *csidrivers.Registry

	// RescanPeriod is how often the directory is listed again and the
	// registered sockets are dialled to see they still answer.
	RescanPeriod time.Duration
	// CallTimeout bounds each registration API call (GetInfo,
	// NotifyRegistrationStatus).
	CallTimeout time.Duration
	// CSITimeout bounds the driver's NodeGetInfo.
	CSITimeout time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("registration directory %q must be an absolute path", c.Dir))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("no node name"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("no API client"))
	}
	if c.Drivers == nil {
		errs = append(errs, errors.New("no driver registry"))
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
		n   string
	}{{&c.RescanPeriod, DefaultRescanPeriod, "rescan period"}, {&c.CallTimeout, DefaultCallTimeout, "call timeout"}, {&c.CSITimeout, DefaultCSITimeout, "CSI timeout"}} {
		if *d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v < 0", d.n, *d.v))
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("plugin watcher: %w", err)
	}
	return nil
}
