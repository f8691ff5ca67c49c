package cache

import (
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/node/plugins"
)

// VolumeToMount is one volume a pod should have.
type VolumeToMount struct {
	// VolumeName is the volume's unique name on this node.
	VolumeName string
	// OuterName is the pod's name for it (pod.spec.volumes[].name).
	OuterName string
	Plugin    plugins.Plugin
	Spec      *plugins.Spec
	Pod       *corev1.Pod
	// Attachable is true when the volume is mounted only once the Node's
	// status.volumesAttached lists it.
	Attachable bool
	// ReportedInUse is true when the last successful write of the Node's
	// status listed the volume in status.volumesInUse
	// (MarkVolumesReportedInUse): the attach/detach controller will not
	// detach it from then on. Set when read, not when added.
	ReportedInUse bool
}

// Desired is the desired state of the world. The zero value is not
// usable; call NewDesired.
type Desired struct {
	mu      sync.RWMutex
	volumes map[string]map[types.UID]VolumeToMount
	// errors are the pod's volume processing errors by outer name.
	errors map[types.UID]map[string]string
	// reported is when the pod's errors were last reported (ReportDue).
	reported map[types.UID]time.Time
	// inUse are the volumes the Node's status last reported in use, as
	// upstream's reportedInUse: only volumes wanted here, forgotten with
	// the last pod that wants them.
	inUse map[string]bool
	n     notifier
}

// NewDesired returns an empty desired state.
func NewDesired() *Desired {
	return &Desired{volumes: map[string]map[types.UID]VolumeToMount{}, errors: map[types.UID]map[string]string{},
		reported: map[types.UID]time.Time{}, inUse: map[string]bool{}}
}

// AddPodVolume records that v.Pod should have v mounted, replacing an
// earlier record of the same pod volume, and clears its processing error.
func (d *Desired) AddPodVolume(v VolumeToMount) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pods := d.volumes[v.VolumeName]
	if pods == nil {
		pods = map[types.UID]VolumeToMount{}
		d.volumes[v.VolumeName] = pods
	}
	pods[v.Pod.UID] = v
	if e := d.errors[v.Pod.UID]; e != nil {
		delete(e, v.OuterName)
	}
	d.n.notify()
}

// DeletePod forgets every volume of the pod and its errors.
func (d *Desired) DeletePod(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, pods := range d.volumes {
		delete(pods, uid)
		if len(pods) == 0 {
			delete(d.volumes, name)
			delete(d.inUse, name)
		}
	}
	delete(d.errors, uid)
	delete(d.reported, uid)
	d.n.notify()
}

// MarkVolumesReportedInUse records which volumes the last successful
// write of the Node's status listed in status.volumesInUse: those wanted
// here are marked reported in use, every other wanted volume is not
// (upstream's MarkVolumesReportedInUse). Names no pod wants are ignored:
// a volume added later waits for a write that lists it.
func (d *Desired) MarkVolumesReportedInUse(names []corev1.UniqueVolumeName) {
	reported := make(map[string]bool, len(names))
	for _, n := range names {
		reported[string(n)] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := false
	for name := range d.volumes {
		if reported[name] != d.inUse[name] {
			changed = true
			if reported[name] {
				d.inUse[name] = true
			} else {
				delete(d.inUse, name)
			}
		}
	}
	if changed {
		d.n.notify()
	}
}

// SetPodError records why the pod's volume outerName could not be
// processed; an empty err clears it.
func (d *Desired) SetPodError(uid types.UID, outerName, err string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.errors[uid]
	if err == "" {
		if e != nil {
			delete(e, outerName)
		}
		return
	}
	if e == nil {
		e = map[string]string{}
		d.errors[uid] = e
	}
	e[outerName] = err
	d.n.notify()
}

// ReportDue says whether the pod's errors are to be reported at now (and
// then notes it), or how long until they are: at most once every.
func (d *Desired) ReportDue(uid types.UID, now time.Time, every time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if last, ok := d.reported[uid]; ok && now.Sub(last) < every {
		return every - now.Sub(last)
	}
	d.reported[uid] = now
	return 0
}

// PodErrors returns the pod's processing errors by outer volume name.
func (d *Desired) PodErrors(uid types.UID) map[string]string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := map[string]string{}
	for k, v := range d.errors[uid] {
		out[k] = v
	}
	return out
}

// PodVolumes returns the pod's volumes by outer name.
func (d *Desired) PodVolumes(uid types.UID) map[string]VolumeToMount {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := map[string]VolumeToMount{}
	for _, pods := range d.volumes {
		if v, ok := pods[uid]; ok {
			v.ReportedInUse = d.inUse[v.VolumeName]
			out[v.OuterName] = v
		}
	}
	return out
}

// HasPod reports whether any volume is wanted for the pod.
func (d *Desired) HasPod(uid types.UID) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, pods := range d.volumes {
		if _, ok := pods[uid]; ok {
			return true
		}
	}
	return false
}

// Wants reports whether the pod should have the volume.
func (d *Desired) Wants(volumeName string, uid types.UID) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.volumes[volumeName][uid]
	return ok
}

// HasVolume reports whether any pod should have the volume.
func (d *Desired) HasVolume(volumeName string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.volumes[volumeName]) > 0
}

// VolumesToMount lists every (volume, pod) pair, ordered by volume name
// and pod UID so that the reconciler works in a stable order.
func (d *Desired) VolumesToMount() []VolumeToMount {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []VolumeToMount
	for name, pods := range d.volumes {
		for _, v := range pods {
			v.ReportedInUse = d.inUse[name]
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VolumeName != out[j].VolumeName {
			return out[i].VolumeName < out[j].VolumeName
		}
		return out[i].Pod.UID < out[j].Pod.UID
	})
	return out
}

// PodUIDs lists the pods that have a volume or an error recorded.
func (d *Desired) PodUIDs() []types.UID {
	d.mu.RLock()
	defer d.mu.RUnlock()
	seen := map[types.UID]bool{}
	for _, pods := range d.volumes {
		for uid := range pods {
			seen[uid] = true
		}
	}
	for uid := range d.errors {
		seen[uid] = true
	}
	out := make([]types.UID, 0, len(seen))
	for uid := range seen {
		out = append(out, uid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Changed returns a channel closed at the next change.
func (d *Desired) Changed() <-chan struct{} { return d.n.changed() }
