package populator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-helpers/storage/ephemeral"

	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
)

// resolve turns one pod volume into what the desired state holds.
func (p *Populator) resolve(ctx context.Context, pod *corev1.Pod, vol *corev1.Volume, mounted, mapped bool) (cache.VolumeToMount, error) {
	spec, err := p.spec(ctx, pod, vol, mounted, mapped)
	if err != nil {
		return cache.VolumeToMount{}, err
	}
	plugin, err := p.findPlugin(spec)
	if err != nil {
		return cache.VolumeToMount{}, err
	}
	name, err := plugin.VolumeName(spec, pod)
	if err != nil {
		return cache.VolumeToMount{}, err
	}
	v := cache.VolumeToMount{VolumeName: name, OuterName: vol.Name, Plugin: plugin, Spec: spec, Pod: pod}
	if a, ok := plugin.(plugins.Attachable); ok {
		v.Attachable = a.Attachable(spec)
	}
	return v, nil
}

func (p *Populator) spec(ctx context.Context, pod *corev1.Pod, vol *corev1.Volume, mounted, mapped bool) (*plugins.Spec, error) {
	claimSource := vol.PersistentVolumeClaim
	isEphemeral := claimSource == nil && vol.Ephemeral != nil
	if isEphemeral {
		claimSource = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ephemeral.VolumeClaimName(pod, vol)}
	}
	if claimSource == nil {
		v := vol.DeepCopy()
		return &plugins.Spec{Name: vol.Name, Volume: v, ReadOnly: inlineReadOnly(v)}, nil
	}
	wrap := func(err error) error {
		return fmt.Errorf("error processing PVC %s/%s: %v", pod.Namespace, claimSource.ClaimName, err)
	}
	claim, err := p.objects.claim(ctx, pod.Namespace, claimSource.ClaimName)
	if err != nil {
		return nil, wrap(fmt.Errorf("failed to fetch PVC from API server: %v", err))
	}
	switch {
	case claim.DeletionTimestamp != nil && !hasString(claim.Finalizers, "kubernetes.io/pvc-protection"):
		return nil, wrap(errors.New("PVC is being deleted"))
	case claim.Status.Phase != corev1.ClaimBound:
		return nil, wrap(errors.New("PVC is not bound"))
	case claim.Spec.VolumeName == "":
		return nil, wrap(errors.New("PVC has empty pvc.Spec.VolumeName"))
	}
	if isEphemeral {
		if err := ephemeral.VolumeIsForPod(pod, claim); err != nil {
			return nil, err
		}
	}
	pv, err := p.objects.volume(ctx, claim.Spec.VolumeName)
	if err != nil {
		return nil, wrap(fmt.Errorf("failed to fetch PV %s from API server: %v", claim.Spec.VolumeName, err))
	}
	if pv.Spec.ClaimRef == nil {
		return nil, wrap(fmt.Errorf("found PV object %s but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim", pv.Name))
	}
	if pv.Spec.ClaimRef.UID != claim.UID {
		return nil, wrap(fmt.Errorf("found PV object %s but its pv.Spec.ClaimRef.UID %s does not point to claim.UID %s",
			pv.Name, pv.Spec.ClaimRef.UID, claim.UID))
	}
	mode := corev1.PersistentVolumeFilesystem
	if pv.Spec.VolumeMode != nil {
		mode = *pv.Spec.VolumeMode
	}
	if mounted && mode != corev1.PersistentVolumeFilesystem {
		return nil, fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeMounts", vol.Name, mode)
	}
	if mapped && mode != corev1.PersistentVolumeBlock {
		return nil, fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeDevices", vol.Name, mode)
	}
	return &plugins.Spec{Name: vol.Name, Volume: vol.DeepCopy(), PV: pv.DeepCopy(),
		ReadOnly: claimSource.ReadOnly || pvReadOnly(pv), Block: mode == corev1.PersistentVolumeBlock}, nil
}

// inlineReadOnly is the volume-level read-only of an inline volume: the
// source's readOnly, and always for API data and image volumes, which
// upstream mounts read-only into containers.
func inlineReadOnly(v *corev1.Volume) bool {
	switch {
	case v.NFS != nil:
		return v.NFS.ReadOnly
	case v.CSI != nil:
		return v.CSI.ReadOnly != nil && *v.CSI.ReadOnly
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil, v.Image != nil:
		return true
	}
	return false
}

func pvReadOnly(pv *corev1.PersistentVolume) bool {
	switch s := pv.Spec.PersistentVolumeSource; {
	case s.NFS != nil:
		return s.NFS.ReadOnly
	case s.CSI != nil:
		return s.CSI.ReadOnly
	}
	return false
}

func (p *Populator) findPlugin(spec *plugins.Spec) (plugins.Plugin, error) {
	var matched []plugins.Plugin
	for _, pl := range p.cfg.Plugins {
		if pl.CanSupport(spec) {
			matched = append(matched, pl)
		}
	}
	switch len(matched) {
	case 1:
		return matched[0], nil
	case 0:
		if spec.PV == nil && spec.Volume != nil && spec.Volume.CSI != nil {
			return nil, fmt.Errorf("no volume plugin matched name: kubernetes.io/csi: CSI inline volume %q (driver %s) waits for the CSI node plugin, which this node does not run yet",
				spec.Name, spec.Volume.CSI.Driver)
		}
		return nil, fmt.Errorf("no volume plugin matched for volume %q", spec.Name)
	}
	names := make([]string, len(matched))
	for i, pl := range matched {
		names[i] = pl.Name()
	}
	sort.Strings(names)
	return nil, fmt.Errorf("multiple volume plugins matched: %s", strings.Join(names, ","))
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// objectCache keeps claims and volumes read with Get for a short time:
// the node may not list or watch them.
type objectCache struct {
	client kubernetes.Interface
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	obj any
	err error
	at  time.Time
}

func newObjectCache(c kubernetes.Interface, ttl time.Duration, now func() time.Time) *objectCache {
	return &objectCache{client: c, ttl: ttl, now: now, entries: map[string]cached{}}
}

func (c *objectCache) get(key string, fetch func() (any, error)) (any, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.obj, e.err
	}
	obj, err := fetch()
	c.mu.Lock()
	for k, old := range c.entries {
		if c.now().Sub(old.at) >= c.ttl {
			delete(c.entries, k)
		}
	}
	c.entries[key] = cached{obj: obj, err: err, at: c.now()}
	c.mu.Unlock()
	return obj, err
}

func (c *objectCache) claim(ctx context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	obj, err := c.get("pvc/"+ns+"/"+name, func() (any, error) {
		return c.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.PersistentVolumeClaim), nil
}

func (c *objectCache) volume(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	obj, err := c.get("pv/"+name, func() (any, error) {
		return c.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.PersistentVolume), nil
}
