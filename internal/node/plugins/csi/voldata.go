package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"volplane/internal/atomicfile"
)

// volDataFile is upstream's name for the file the CSI plugin keeps beside
// each global mount and each pod's mount.
const volDataFile = "vol_data.json"

// volData is upstream's vol_data.json: what the plugin needs to unstage
// or unpublish a volume when it only has a path (after a restart).
type volData struct {
	SpecVolID           string `json:"specVolID,omitempty"`
	VolumeHandle        string `json:"volumeHandle"`
	DriverName          string `json:"driverName"`
	NodeName            string `json:"nodeName,omitempty"`
	AttachmentID        string `json:"attachmentID,omitempty"`
	VolumeLifecycleMode string `json:"volumeLifecycleMode,omitempty"`
}

// writeVolData writes dir/vol_data.json durably, making dir first.
func writeVolData(dir string, d volData) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, volDataFile), b); err != nil {
		return fmt.Errorf("kubernetes.io/csi: failed to save volume info data: %w", err)
	}
	return nil
}

// readVolData reads dir/vol_data.json; a missing file is os.ErrNotExist.
func readVolData(dir string) (volData, error) {
	var d volData
	b, err := os.ReadFile(filepath.Join(dir, volDataFile))
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("kubernetes.io/csi: %s: %w", filepath.Join(dir, volDataFile), err)
	}
	if d.DriverName == "" || d.VolumeHandle == "" {
		return d, fmt.Errorf("kubernetes.io/csi: %s names no driver or volume handle", filepath.Join(dir, volDataFile))
	}
	return d, nil
}

// removeMountDir removes path (which must not be a mount point any more),
// vol_data.json beside it and their directory once empty, as upstream
// does after an unpublish or unstage.
func (p *Plugin) removeMountDir(path string) error {
	mounted, err := p.host.Ops.IsMountPoint(path)
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("kubernetes.io/csi: %s is still mounted", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kubernetes.io/csi: failed to remove dir %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.Remove(filepath.Join(dir, volDataFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kubernetes.io/csi: failed to remove dir %s: %w", dir, err)
	}
	return nil
}
