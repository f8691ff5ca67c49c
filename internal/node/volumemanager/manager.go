package volumemanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops"
	"volplane/internal/logging"
	"volplane/internal/node/plugins"
	"volplane/internal/node/subpath"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/populator"
	"volplane/internal/node/volumemanager/reconciler"
	"volplane/internal/node/volumemanager/reconstruction"
)

// Config is what the volume manager needs.
type Config struct {
	// RootDir is the agent's --root-dir (DIR/kubelet under up).
	RootDir string
	// NodeName is this node's name.
	NodeName string
	// Client is the API as the node's identity (system:node:<name>).
	Client kubernetes.Interface
	// Recorder emits events on pods.
	Recorder record.EventRecorder
	// Ops does all privileged work.
	Ops hostops.Host
	// Pods is the agent's view of the pods bound to this node.
	Pods PodStates
	// PodsSynced reports whether Pods lists every pod bound to this node
	// yet; until it does nothing is torn down. Nil means always synced.
	PodsSynced func() bool
	// AttachedVolumes returns the Node's status.volumesAttached.
	AttachedVolumes func() []corev1.AttachedVolume
	// Plugins are the volume plugins; each is Init'ed by New.
	Plugins []plugins.Plugin
	// APICacheTTL is how long a claim, volume or the Node read with Get
	// is reused (default 1 s).
	APICacheTTL time.Duration
	// Log is the manager's logger (logging.FromContext of Run's context
	// when nil).
	Log *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.RootDir == "" || !filepath.IsAbs(c.RootDir) {
		errs = append(errs, fmt.Errorf("volumemanager: RootDir %q must be an absolute path", c.RootDir))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("volumemanager: NodeName is empty"))
	}
	if c.Client == nil || c.Recorder == nil || c.Ops == nil || c.Pods == nil || c.AttachedVolumes == nil {
		errs = append(errs, errors.New("volumemanager: Client, Recorder, Ops, Pods and AttachedVolumes are required"))
	}
	if c.APICacheTTL < 0 {
		errs = append(errs, errors.New("volumemanager: APICacheTTL is negative"))
	}
	names := map[string]bool{}
	for _, p := range c.Plugins {
		if names[p.Name()] {
			errs = append(errs, fmt.Errorf("volumemanager: plugin %s given twice", p.Name()))
		}
		names[p.Name()] = true
	}
	return errors.Join(errs...)
}

// Manager is the volume manager.
type Manager struct {
	cfg        Config
	store      reconstruction.Store
	desired    *cache.Desired
	actual     *cache.Actual
	populator  *populator.Populator
	reconciler *reconciler.Reconciler

	// synced is set once reconstruction is done (StatesSynced).
	synced atomic.Bool

	nodeMu sync.Mutex
	node   *corev1.Node
	nodeAt time.Time
}

var _ Interface = (*Manager)(nil)

// podAttachAndMountTimeout caps WaitForAttachAndMount and WaitForUnmount
// as upstream's kubelet does.
const podAttachAndMountTimeout = 2*time.Minute + 3*time.Second

// New makes the root's directories, initialises the plugins and returns
// a manager; nothing happens on the host until Run.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.APICacheTTL == 0 {
		cfg.APICacheTTL = time.Second
	}
	for _, d := range []string{"pods", "plugins"} {
		if err := os.MkdirAll(filepath.Join(cfg.RootDir, d), 0o750); err != nil {
			return nil, err
		}
	}
	m := &Manager{cfg: cfg, store: reconstruction.Store{Root: cfg.RootDir}, desired: cache.NewDesired(),
		actual: cache.NewActual()}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	var err error
	m.populator, err = populator.New(populator.Config{Pods: cfg.Pods, PodsSynced: cfg.PodsSynced, Desired: m.desired,
		Client: cfg.Client, Plugins: cfg.Plugins, CacheTTL: cfg.APICacheTTL})
	if err != nil {
		return nil, err
	}
	m.reconciler, err = reconciler.New(reconciler.Config{RootDir: cfg.RootDir, Ops: cfg.Ops, Desired: m.desired,
		Actual: m.actual, Store: m.store, Recorder: cfg.Recorder, Attached: cfg.AttachedVolumes,
		Ready: m.populator.Ready, NodeLabels: m.nodeLabels})
	if err != nil {
		return nil, err
	}
	// The plugins come last: Remount and Retry may be called from the
	// moment Init starts.
	for _, p := range cfg.Plugins {
		host := &plugins.Host{RootDir: cfg.RootDir, NodeName: cfg.NodeName, Ops: cfg.Ops, Client: cfg.Client,
			Recorder: cfg.Recorder, Log: log.With("plugin", p.Name()), Remount: m.remount, Retry: m.reconciler.RetryNow}
		if err := p.Init(host); err != nil {
			return nil, fmt.Errorf("init volume plugin %s: %w", p.Name(), err)
		}
	}
	return m, nil
}

// Run implements Interface: reconstruction, then the populator, the
// reconciler and the orphan cleanup until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	log := m.cfg.Log
	if log == nil {
		log = logging.FromContext(ctx)
	}
	log = log.With("component", "volumemanager")
	ctx = logging.NewContext(ctx, log)
	if _, err := reconstruction.Reconstruct(ctx, reconstruction.Config{Store: m.store, Ops: m.cfg.Ops,
		Actual: m.actual, Plugins: m.cfg.Plugins, Log: log}); err != nil {
		log.ErrorContext(ctx, "volume reconstruction failed; continuing with what was found", "err", err)
	}
	m.synced.Store(true)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.populator.Run(ctx) }()
	go func() { defer wg.Done(); m.reconciler.Run(ctx) }()
	go func() { defer wg.Done(); m.cleanOrphansLoop(ctx) }()
	wg.Wait()
}

func (m *Manager) cleanOrphansLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.populator.Ready() {
			continue
		}
		kept, err := m.CleanOrphans(ctx)
		log := logging.FromContext(ctx)
		if err != nil {
			log.WarnContext(ctx, "orphaned pod directories not all removed", "err", err)
		}
		for _, o := range kept {
			if !reported[o.Dir] {
				reported[o.Dir] = true
				log.WarnContext(ctx, "orphaned pod directory still holds mounts; kept", "dir", o.Dir, "mounts", o.Mounts)
			}
		}
	}
}

// CleanOrphans removes the directories of pods that the agent does not
// list and that hold no volume, keeping (and returning) those with a
// mount beneath them.
func (m *Manager) CleanOrphans(ctx context.Context) ([]reconstruction.Orphan, error) {
	known := map[types.UID]bool{}
	for _, p := range m.cfg.Pods.Pods() {
		known[p.UID] = true
	}
	return reconstruction.CleanOrphans(ctx, m.store, m.cfg.Ops, func(uid types.UID) bool {
		return known[uid] || m.desired.HasPod(uid) || len(m.actual.PodVolumes(uid)) > 0
	})
}

func (m *Manager) remount(uid types.UID) {
	m.actual.RequestRemount(uid, func(v cache.MountedVolume) bool {
		rm, ok := v.Plugin.(plugins.Remounter)
		return ok && rm.RequiresRemount(v.Spec)
	})
	m.reconciler.Trigger()
}

func (m *Manager) nodeLabels(ctx context.Context) (map[string]string, error) {
	m.nodeMu.Lock()
	defer m.nodeMu.Unlock()
	if m.node != nil && time.Since(m.nodeAt) < m.cfg.APICacheTTL {
		return m.node.Labels, nil
	}
	n, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", m.cfg.NodeName, err)
	}
	m.node, m.nodeAt = n, time.Now()
	return n.Labels, nil
}

// PodVolumes implements Interface.
func (m *Manager) PodVolumes(podUID types.UID) map[string]MountedVolume {
	out := map[string]MountedVolume{}
	for name, v := range m.actual.PodVolumes(podUID) {
		if v.Uncertain {
			continue
		}
		out[name] = MountedVolume{HostPath: v.HostPath, DevicePath: v.DevicePath, ReadOnly: v.ReadOnly}
	}
	return out
}

// PrepareSubPath implements Interface.
func (m *Manager) PrepareSubPath(ctx context.Context, req SubPathRequest) (string, error) {
	if req.Pod == nil {
		return "", errors.New("PrepareSubPath: no pod")
	}
	if err := subpath.Validate(req.SubPath); err != nil {
		return "", err
	}
	v, ok := m.PodVolumes(req.Pod.UID)[req.Volume]
	if !ok {
		return "", fmt.Errorf("volume %q of pod %s/%s is not mounted", req.Volume, req.Pod.Namespace, req.Pod.Name)
	}
	if v.HostPath == "" {
		return "", fmt.Errorf("volume %q is a block volume: subPath does not apply", req.Volume)
	}
	target := subpath.Target(m.store.PodDir(req.Pod.UID), req.Volume, req.Container, req.MountIndex)
	if err := subpath.Prepare(ctx, m.cfg.Ops, v.HostPath, req.SubPath, target); err != nil {
		return "", err
	}
	return target, nil
}

// VolumesInUse implements Interface.
func (m *Manager) VolumesInUse() []corev1.UniqueVolumeName {
	set := map[string]bool{}
	for _, v := range m.desired.VolumesToMount() {
		if v.Attachable {
			set[v.VolumeName] = true
		}
	}
	for _, v := range m.actual.AllMounted() {
		if a, ok := v.Plugin.(plugins.Attachable); ok && a.Attachable(v.Spec) {
			set[v.VolumeName] = true
		}
	}
	// A device still staged with no pod left is in use until
	// UnmountDevice is done, as upstream's attached volumes are.
	for _, d := range m.actual.UnusedDevices() {
		if a, ok := d.Plugin.(plugins.Attachable); ok && a.Attachable(d.Spec) {
			set[d.VolumeName] = true
		}
	}
	out := make([]corev1.UniqueVolumeName, 0, len(set))
	for n := range set {
		out = append(out, corev1.UniqueVolumeName(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// VolumesInUseChanged implements Interface.
func (m *Manager) VolumesInUseChanged() <-chan struct{} { return m.desired.Changed() }

// MarkVolumesAsReportedInUse implements Interface.
func (m *Manager) MarkVolumesAsReportedInUse(names []corev1.UniqueVolumeName) {
	m.desired.MarkVolumesReportedInUse(names)
}

// StatesSynced implements Interface.
func (m *Manager) StatesSynced() bool { return m.synced.Load() }
