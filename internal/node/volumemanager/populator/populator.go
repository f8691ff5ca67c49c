package populator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
)

// PodStates is volumemanager.PodStates (repeated here so that this
// package need not import its parent).
type PodStates interface {
	Pods() []*corev1.Pod
	ContainersTerminated(uid types.UID) bool
}

// Config is what the populator works with.
type Config struct {
	Pods PodStates
	// PodsSynced reports whether Pods lists every pod bound to the node;
	// nil means always.
	PodsSynced func() bool
	Desired    *cache.Desired
	Client     kubernetes.Interface
	Plugins    []plugins.Plugin
	// CacheTTL is how long a claim or volume read from the API is used
	// (default 1 s).
	CacheTTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Pods == nil || c.Desired == nil || c.Client == nil {
		return errors.New("populator: Pods, Desired and Client are required")
	}
	if c.CacheTTL < 0 {
		return errors.New("populator: CacheTTL is negative")
	}
	return nil
}

// Populator fills the desired state.
type Populator struct {
	cfg     Config
	objects *objectCache
	trigger chan struct{}
	ready   atomic.Bool

	mu        sync.Mutex
	processed map[types.UID]bool
}

// New returns a populator.
func New(cfg Config) (*Populator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Populator{cfg: cfg, objects: newObjectCache(cfg.Client, cfg.CacheTTL, cfg.Now),
		trigger: make(chan struct{}, 1), processed: map[types.UID]bool{}}, nil
}

// Ready reports whether a full pass over a synced pod list was made.
func (p *Populator) Ready() bool { return p.ready.Load() }

// Reprocess makes the next pass resolve the pod's volumes again.
func (p *Populator) Reprocess(uid types.UID) {
	p.mu.Lock()
	delete(p.processed, uid)
	p.mu.Unlock()
	p.Trigger()
}

// Trigger asks for a pass soon.
func (p *Populator) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Run populates every 100 ms, or when triggered, until ctx is done.
func (p *Populator) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		p.Populate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.trigger:
		}
	}
}

// Populate makes one pass.
func (p *Populator) Populate(ctx context.Context) {
	if p.cfg.PodsSynced != nil && !p.cfg.PodsSynced() {
		return
	}
	seen := map[types.UID]bool{}
	for _, pod := range p.cfg.Pods.Pods() {
		seen[pod.UID] = true
		if p.cfg.Pods.ContainersTerminated(pod.UID) {
			p.forget(pod.UID)
			continue
		}
		p.mu.Lock()
		done := p.processed[pod.UID]
		p.mu.Unlock()
		if done {
			continue
		}
		ok := p.processPod(ctx, pod)
		p.mu.Lock()
		p.processed[pod.UID] = ok
		p.mu.Unlock()
	}
	for _, uid := range p.cfg.Desired.PodUIDs() {
		if !seen[uid] {
			p.forget(uid)
		}
	}
	p.ready.Store(true)
}

func (p *Populator) forget(uid types.UID) {
	p.cfg.Desired.DeletePod(uid)
	p.mu.Lock()
	delete(p.processed, uid)
	p.mu.Unlock()
}

// processPod adds the pod's volumes; it reports whether all resolved.
func (p *Populator) processPod(ctx context.Context, pod *corev1.Pod) bool {
	mounts, devices := UsedVolumes(pod)
	ok := true
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if !mounts[vol.Name] && !devices[vol.Name] {
			continue
		}
		v, err := p.resolve(ctx, pod, vol, mounts[vol.Name], devices[vol.Name])
		if err != nil {
			ok = false
			p.cfg.Desired.SetPodError(pod.UID, vol.Name, err.Error())
			continue
		}
		p.cfg.Desired.SetPodError(pod.UID, vol.Name, "")
		p.cfg.Desired.AddPodVolume(v)
	}
	return ok
}

// UsedVolumes returns the names of the pod's volumes that its containers
// (init, regular, ephemeral) mount and map.
func UsedVolumes(pod *corev1.Pod) (mounts, devices map[string]bool) {
	mounts, devices = map[string]bool{}, map[string]bool{}
	add := func(vm []corev1.VolumeMount, vd []corev1.VolumeDevice) {
		for _, m := range vm {
			mounts[m.Name] = true
		}
		for _, d := range vd {
			devices[d.Name] = true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		add(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.Containers {
		add(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		add(c.VolumeMounts, c.VolumeDevices)
	}
	return mounts, devices
}
