package localpv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"volplane/internal/hostops"
)

// DefaultStorageClass is the class of the PVs when none is named
// (--local-storage-class).
const DefaultStorageClass = "local-storage"

// Config configures the local static provisioner of one node.
type Config struct {
	// NodeName is the node whose mount points become PVs; its Node must
	// exist (the provisioner waits for it).
	NodeName string
	// DiscoveryDir is the directory whose mount points (directly under
	// it) become PVs (--local-discovery-dir). It is made if missing.
	DiscoveryDir string
	// StorageClass is the PVs' class (--local-storage-class, default
	// local-storage). Its reclaimPolicy, when it can be read, is the
	// PVs' (Delete or Retain); Delete otherwise.
	StorageClass string
	// Client is the provisioner's own identity: PVs get, list, watch,
	// create and delete; storageclasses get; events create and patch;
	// nodes get; pods list.
	Client kubernetes.Interface
	// Host reads the mount table.
	Host hostops.Host
	// Rescan is how often the mount table is read again when nothing
	// fired (a mount does not touch the directory's inotify watch).
	// Default 5 s.
	Rescan time.Duration
}

// Validate checks c, fills in defaults, makes the discovery dir and
// resolves it to the path the mount table shows.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("local provisioner: no node name")
	}
	if c.DiscoveryDir == "" {
		return errors.New("local provisioner: no discovery dir")
	}
	if c.Client == nil || c.Host == nil {
		return errors.New("local provisioner: no client or host")
	}
	if c.StorageClass == "" {
		c.StorageClass = DefaultStorageClass
	}
	if c.Rescan == 0 {
		c.Rescan = 5 * time.Second
	}
	if c.Rescan < 0 {
		return fmt.Errorf("local provisioner: rescan interval %s", c.Rescan)
	}
	if err := os.MkdirAll(c.DiscoveryDir, 0o755); err != nil {
		return fmt.Errorf("local provisioner: %w", err)
	}
	abs, err := filepath.Abs(c.DiscoveryDir)
	if err != nil {
		return fmt.Errorf("local provisioner: %w", err)
	}
	if c.DiscoveryDir, err = filepath.EvalSymlinks(abs); err != nil {
		return fmt.Errorf("local provisioner: %w", err)
	}
	return nil
}
