package reconstruction

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/atomicfile"
	"volplane/internal/node/plugins"
)

// Record is what the volume manager writes down about one pod volume
// before it touches the host for it, and removes once the volume is torn
// down: enough to tear it down (or recognise it) after a crash.
type Record struct {
	Plugin     string    `json:"plugin"`
	VolumeName string    `json:"volumeName"`
	OuterName  string    `json:"outerName"`
	PodUID     types.UID `json:"podUID"`
	// Dir is the pod volume directory, or the pod's device link for a
	// block volume.
	Dir        string                   `json:"dir"`
	HostPath   string                   `json:"hostPath,omitempty"`
	DevicePath string                   `json:"devicePath,omitempty"`
	ReadOnly   bool                     `json:"readOnly,omitempty"`
	Block      bool                     `json:"block,omitempty"`
	Volume     *corev1.Volume           `json:"volume,omitempty"`
	PV         *corev1.PersistentVolume `json:"pv,omitempty"`
}

// DeviceRecord is written before a DeviceMounter's MountDevice and
// removed after its UnmountDevice.
type DeviceRecord struct {
	Plugin     string                   `json:"plugin"`
	VolumeName string                   `json:"volumeName"`
	MountPath  string                   `json:"mountPath"`
	Volume     *corev1.Volume           `json:"volume,omitempty"`
	PV         *corev1.PersistentVolume `json:"pv,omitempty"`
	ReadOnly   bool                     `json:"readOnly,omitempty"`
	Block      bool                     `json:"block,omitempty"`
}

// Spec rebuilds the plugin spec a record was written from.
func (r *Record) Spec() *plugins.Spec {
	return &plugins.Spec{Name: r.OuterName, Volume: r.Volume, PV: r.PV, ReadOnly: r.ReadOnly, Block: r.Block}
}

// Spec rebuilds the plugin spec a device record was written from.
func (r *DeviceRecord) Spec() *plugins.Spec {
	name := ""
	if r.Volume != nil {
		name = r.Volume.Name
	}
	return &plugins.Spec{Name: name, Volume: r.Volume, PV: r.PV, ReadOnly: r.ReadOnly, Block: r.Block}
}

// Store reads and writes records under the agent's root directory:
// <root>/pods/<uid>/volume-meta/<plugin dir>~~<outer name>.json for pod
// volumes and <root>/plugins/<plugin dir>/volume-meta/<hex volume
// name>.json for global mounts.
type Store struct{ Root string }

// PodDir is <root>/pods/<uid>.
func (s Store) PodDir(uid types.UID) string { return filepath.Join(s.Root, "pods", string(uid)) }

func (s Store) recordPath(uid types.UID, plugin, outer string) string {
	return filepath.Join(s.PodDir(uid), "volume-meta", plugins.EscapeName(plugin)+"~~"+outer+".json")
}

func (s Store) deviceRecordPath(plugin, volumeName string) string {
	return filepath.Join(s.Root, "plugins", plugins.EscapeName(plugin), "volume-meta", fmt.Sprintf("%x.json", volumeName))
}

// Write stores r durably (write, fsync, rename, fsync the directory).
func (s Store) Write(r *Record) error {
	return writeJSON(s.recordPath(r.PodUID, r.Plugin, r.OuterName), r)
}

// Remove deletes r's record; a missing record is not an error.
func (s Store) Remove(uid types.UID, plugin, outer string) error {
	return removeFile(s.recordPath(uid, plugin, outer))
}

// WriteDevice stores a device record durably.
func (s Store) WriteDevice(r *DeviceRecord) error {
	return writeJSON(s.deviceRecordPath(r.Plugin, r.VolumeName), r)
}

// RemoveDevice deletes a device record; a missing one is not an error.
func (s Store) RemoveDevice(plugin, volumeName string) error {
	return removeFile(s.deviceRecordPath(plugin, volumeName))
}

// PodRecords reads every record of the pod. A record that cannot be read
// (a crash cannot leave one half-written, but a person can) is returned
// in bad by path.
func (s Store) PodRecords(uid types.UID) (recs []*Record, bad []string, err error) {
	dir := filepath.Join(s.PodDir(uid), "volume-meta")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		var r Record
		if err := readJSON(p, &r); err != nil || r.PodUID != uid || r.VolumeName == "" {
			bad = append(bad, p)
			continue
		}
		recs = append(recs, &r)
	}
	return recs, bad, nil
}

// DeviceRecords reads every device record of every plugin.
func (s Store) DeviceRecords() (recs []*DeviceRecord, bad []string, err error) {
	dirs, err := filepath.Glob(filepath.Join(s.Root, "plugins", "*", "volume-meta", "*.json"))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range dirs {
		var r DeviceRecord
		if err := readJSON(p, &r); err != nil || r.VolumeName == "" {
			bad = append(bad, p)
			continue
		}
		recs = append(recs, &r)
	}
	return recs, bad, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("write volume record %s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
