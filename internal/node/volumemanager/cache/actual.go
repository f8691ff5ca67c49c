package cache

import (
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/node/plugins"
)

// MountedVolume is one volume set up for one pod.
type MountedVolume struct {
	VolumeName string
	OuterName  string
	PodUID     types.UID
	Plugin     plugins.Plugin
	Spec       *plugins.Spec
	// Dir is the pod volume directory SetUp was given (for block volumes,
	// the pod's device link).
	Dir string
	// HostPath is what the runtime bind-mounts (filesystem volumes).
	HostPath string
	// DevicePath is what the runtime makes a device node of (block).
	DevicePath string
	ReadOnly   bool
	// Uncertain is true when the volume may be only partly set up (it was
	// found by reconstruction, or SetUp failed after starting): SetUp runs
	// again if a pod wants it, TearDown if none does. Both are idempotent.
	Uncertain bool
	// RemountRequested asks for SetUp to run again (content plugins).
	RemountRequested bool
}

// Device is a volume's global (per-node) state.
type Device struct {
	VolumeName string
	Plugin     plugins.Plugin
	Spec       *plugins.Spec
	// MountPath is the DeviceMounter's global mount path, when mounted.
	MountPath string
	Mounted   bool
	// Uncertain is true when the global mount may be only partly done
	// (reconstruction found its record but no mount at MountPath: a
	// driver that stages nothing there, a raw block staging, or a
	// MountDevice that failed after starting): MountDevice runs again
	// before a pod is set up, UnmountDevice when no pod wants the volume.
	// Both are idempotent. Mounted is true as well, so that the volume is
	// not forgotten before UnmountDevice.
	Uncertain bool
}

type actualVolume struct {
	device Device
	pods   map[types.UID]MountedVolume
}

// Actual is the actual state of the world. The zero value is not usable;
// call NewActual.
type Actual struct {
	mu      sync.RWMutex
	volumes map[string]*actualVolume
	// byPod indexes volumes' pods: the names of the volumes each pod
	// has, so that a pod's lookups do not walk every volume of the node
	// (each waiting pod looks at every change).
	byPod map[types.UID]map[string]bool
	n     notifier
}

// NewActual returns an empty actual state.
func NewActual() *Actual {
	return &Actual{volumes: map[string]*actualVolume{}, byPod: map[types.UID]map[string]bool{}}
}

func (a *Actual) volume(name string, p plugins.Plugin, spec *plugins.Spec) *actualVolume {
	v := a.volumes[name]
	if v == nil {
		v = &actualVolume{device: Device{VolumeName: name, Plugin: p, Spec: spec}, pods: map[types.UID]MountedVolume{}}
		a.volumes[name] = v
	}
	return v
}

// MarkDeviceMounted records the volume's global mount at path.
func (a *Actual) MarkDeviceMounted(name string, p plugins.Plugin, spec *plugins.Spec, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.volume(name, p, spec)
	v.device.MountPath, v.device.Mounted, v.device.Uncertain = path, true, false
	a.n.notify()
}

// MarkDeviceUncertain records that the volume's global mount at path may
// be partly done; see Device.Uncertain.
func (a *Actual) MarkDeviceUncertain(name string, p plugins.Plugin, spec *plugins.Spec, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.volume(name, p, spec)
	v.device.MountPath, v.device.Mounted, v.device.Uncertain = path, true, true
	a.n.notify()
}

// MarkDeviceUnmounted records that the global mount is gone; the volume
// is forgotten once no pod has it either.
func (a *Actual) MarkDeviceUnmounted(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v := a.volumes[name]; v != nil {
		v.device.Mounted, v.device.Uncertain, v.device.MountPath = false, false, ""
		if len(v.pods) == 0 {
			delete(a.volumes, name)
		}
	}
	a.n.notify()
}

// MarkMounted records (or replaces) the pod's mounted volume.
func (a *Actual) MarkMounted(m MountedVolume) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.volume(m.VolumeName, m.Plugin, m.Spec).pods[m.PodUID] = m
	names := a.byPod[m.PodUID]
	if names == nil {
		names = map[string]bool{}
		a.byPod[m.PodUID] = names
	}
	names[m.VolumeName] = true
	a.n.notify()
}

// MarkUnmounted forgets the pod's volume; the volume itself is forgotten
// once no pod has it and no global mount is left.
func (a *Actual) MarkUnmounted(name string, uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v := a.volumes[name]; v != nil {
		delete(v.pods, uid)
		if len(v.pods) == 0 && !v.device.Mounted {
			delete(a.volumes, name)
		}
	}
	if names := a.byPod[uid]; names != nil {
		delete(names, name)
		if len(names) == 0 {
			delete(a.byPod, uid)
		}
	}
	a.n.notify()
}

// RequestRemount flags every volume of the pod for another SetUp, for
// the plugins that ask.
func (a *Actual) RequestRemount(uid types.UID, wants func(MountedVolume) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.byPod[uid] {
		v := a.volumes[name]
		if m, ok := v.pods[uid]; ok && wants(m) {
			m.RemountRequested = true
			v.pods[uid] = m
		}
	}
}

// Mounted returns the pod's volume if it is recorded.
func (a *Actual) Mounted(name string, uid types.UID) (MountedVolume, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	v := a.volumes[name]
	if v == nil {
		return MountedVolume{}, false
	}
	m, ok := v.pods[uid]
	return m, ok
}

// Device returns the volume's global state.
func (a *Actual) Device(name string) (Device, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	v := a.volumes[name]
	if v == nil {
		return Device{}, false
	}
	return v.device, true
}

// PodVolumes returns the pod's recorded volumes by outer name.
func (a *Actual) PodVolumes(uid types.UID) map[string]MountedVolume {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[string]MountedVolume, len(a.byPod[uid]))
	for name := range a.byPod[uid] {
		if m, ok := a.volumes[name].pods[uid]; ok {
			out[m.OuterName] = m
		}
	}
	return out
}

// AllMounted lists every pod volume, ordered by volume name and pod UID.
func (a *Actual) AllMounted() []MountedVolume {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []MountedVolume
	for _, v := range a.volumes {
		for _, m := range v.pods {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VolumeName != out[j].VolumeName {
			return out[i].VolumeName < out[j].VolumeName
		}
		return out[i].PodUID < out[j].PodUID
	})
	return out
}

// UnusedDevices lists the global mounts, certain or not, no pod has any
// more.
func (a *Actual) UnusedDevices() []Device {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Device
	for _, v := range a.volumes {
		if v.device.Mounted && len(v.pods) == 0 {
			out = append(out, v.device)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VolumeName < out[j].VolumeName })
	return out
}

// VolumeNames lists every volume recorded.
func (a *Actual) VolumeNames() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.volumes))
	for name := range a.volumes {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Changed returns a channel closed at the next change.
func (a *Actual) Changed() <-chan struct{} { return a.n.changed() }
