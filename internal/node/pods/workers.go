package pods

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
	"volplane/internal/node/volumemanager"
)

// Crash-loop backoff, upstream's: 10 s doubling to 5 min, forgotten once
// a container ran for 10 min (twice the maximum).
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
)

// Workers runs one worker goroutine per pod bound to this node.
type Workers struct {
	cfg     Config
	backoff *flowcontrol.Backoff
	status  *statusManager
	now     func() time.Time
	// starts holds a token for each container create and start in
	// flight (Config.MaxParallelStarts).
	starts chan struct{}

	mu      sync.Mutex
	ctx     context.Context // set by Run; workers started before Run wait for it
	started chan struct{}
	workers map[types.UID]*podWorker
	byName  map[types.NamespacedName]types.UID
	// present holds the pod UIDs that had a sandbox in the runtime when
	// the agent started and have no worker yet: their containers may
	// run, so their volumes must stay (ContainersTerminated is false).
	present map[types.UID]bool
	// exited caches the statuses of exited containers, which never change.
	exited map[string]*instance
	// finished holds the pods whose workers removed them, with when:
	// an update the informer delivers late gets no second worker.
	finished map[types.UID]time.Time
}

// finishedMemory is how long a removed pod's UID is remembered.
const finishedMemory = 5 * time.Minute

var _ volumemanager.PodStates = (*Workers)(nil)

// New returns the pod workers. It lists the runtime's sandboxes once, so
// that the volumes of pods found running are kept until their pods are
// known (adoption) or found orphaned.
func New(cfg Config) (*Workers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Workers{
		cfg:      cfg,
		backoff:  flowcontrol.NewBackOff(backoffInitial, backoffMax),
		now:      time.Now,
		started:  make(chan struct{}),
		starts:   make(chan struct{}, cfg.MaxParallelStarts),
		workers:  map[types.UID]*podWorker{},
		byName:   map[types.NamespacedName]types.UID{},
		present:  map[types.UID]bool{},
		exited:   map[string]*instance{},
		finished: map[types.UID]time.Time{},
	}
	w.status = newStatusManager(cfg.Client, w.now)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sbs, err := cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("pods: listing the runtime's sandboxes: %w", err)
	}
	for _, s := range sbs {
		if uid := s.GetLabels()[labelPodUID]; uid != "" {
			w.present[types.UID(uid)] = true
		}
	}
	return w, nil
}

// Update tells the workers the pod's latest state. The agent calls it
// from its informer's add and update handlers for pods bound to this node.
func (w *Workers) Update(pod *corev1.Pod) {
	if pod.Spec.NodeName != w.cfg.NodeName {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	pw, ok := w.workers[pod.UID]
	if !ok {
		if _, done := w.finished[pod.UID]; done {
			return
		}
		pw = newPodWorker(w, pod.DeepCopy(), false)
		w.workers[pod.UID] = pw
		w.byName[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] = pod.UID
		delete(w.present, pod.UID)
		go pw.run(w.started)
		return
	}
	pw.update(pod.DeepCopy(), false)
}

// Delete tells the workers the pod object is gone. Its containers are
// stopped (at once when no graceful deletion preceded), its volumes torn
// down and its directory removed.
func (w *Workers) Delete(pod *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pw, ok := w.workers[pod.UID]; ok {
		pw.update(nil, true)
	}
}

// Evict stops the pod's containers for good and marks it Failed with
// reason Evicted and message, with a Warning event of the same: what the
// kubelet's eviction manager does to a pod that outgrew its local
// storage. It reports whether the pod has a worker on this node.
func (w *Workers) Evict(uid types.UID, message string) bool {
	w.mu.Lock()
	pw, ok := w.workers[uid]
	w.mu.Unlock()
	if !ok {
		return false
	}
	pw.mu.Lock()
	if pw.evicted == nil {
		pw.evicted = &waitReason{Reason: reasonEvicted, Message: message}
	}
	pw.mu.Unlock()
	pw.kick()
	return true
}

// forget drops a finished worker.
func (w *Workers) forget(pw *podWorker) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.workers[pw.uid] == pw {
		delete(w.workers, pw.uid)
		nn := types.NamespacedName{Namespace: pw.namespace, Name: pw.name}
		if w.byName[nn] == pw.uid {
			delete(w.byName, nn)
		}
	}
	delete(w.present, pw.uid)
	w.finished[pw.uid] = w.now()
	w.status.forget(pw.uid)
}

// Run starts the workers and relists the runtime until ctx is done. Pods
// given to Update before Run wait for it. Stopping leaves every container
// running: the next agent adopts them.
func (w *Workers) Run(ctx context.Context) {
	logger := logging.FromContext(ctx).With("component", "pods")
	ctx = logging.NewContext(ctx, logger)
	w.mu.Lock()
	w.ctx = ctx
	close(w.started)
	w.mu.Unlock()

	seen := map[string]runtimeapi.ContainerState{}
	t := time.NewTicker(w.cfg.RelistPeriod)
	defer t.Stop()
	housekeeping := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen = w.relist(ctx, seen)
		if housekeeping++; housekeeping%2 == 0 {
			w.cleanupOrphans(ctx)
			w.backoff.GC()
			w.pruneFinished()
		}
	}
}

// relist lists every container once and wakes the worker of each pod
// whose containers changed state since the last list, as upstream's PLEG.
func (w *Workers) relist(ctx context.Context, seen map[string]runtimeapi.ContainerState) map[string]runtimeapi.ContainerState {
	cs, err := w.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		logging.FromContext(ctx).Warn("listing containers", "err", err)
		return seen
	}
	now := make(map[string]runtimeapi.ContainerState, len(cs))
	changed := map[types.UID]bool{}
	for _, c := range cs {
		now[c.Id] = c.State
		if old, ok := seen[c.Id]; !ok || old != c.State {
			changed[types.UID(c.GetLabels()[labelPodUID])] = true
		}
	}
	w.mu.Lock()
	for id := range seen {
		if _, ok := now[id]; !ok {
			delete(w.exited, id)
		}
	}
	for uid := range changed {
		if pw, ok := w.workers[uid]; ok {
			pw.kick()
		}
	}
	w.mu.Unlock()
	return now
}

// pruneFinished forgets removed pods after finishedMemory.
func (w *Workers) pruneFinished() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid, at := range w.finished {
		if w.now().Sub(at) > finishedMemory {
			delete(w.finished, uid)
		}
	}
}

// cleanupOrphans gives a worker to every sandbox whose pod the informer,
// once synced, does not know: the pod was deleted while the agent was
// down. The worker stops and removes it like a deleted pod.
func (w *Workers) cleanupOrphans(ctx context.Context) {
	if !w.cfg.PodsSynced() {
		return
	}
	sbs, err := w.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		logging.FromContext(ctx).Warn("listing sandboxes", "err", err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range sbs {
		uid := types.UID(s.GetLabels()[labelPodUID])
		if uid == "" {
			continue
		}
		if _, ok := w.workers[uid]; ok {
			continue
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name:      s.GetLabels()[labelPodName],
			Namespace: s.GetLabels()[labelPodNamespace],
			UID:       uid,
		}}
		logging.FromContext(ctx).Info("stopping the containers of a pod that no longer exists", "pod", pod.Namespace+"/"+pod.Name, "uid", uid)
		pw := newPodWorker(w, pod, true)
		w.workers[uid] = pw
		go pw.run(w.started)
	}
}

// Pods implements volumemanager.PodStates: every pod with a worker,
// terminated ones included, until its volumes are down and it is
// forgotten. The objects are shared (the populator reads them every
// 100 ms; a deep copy of every pod each time was a tenth of the agent's
// CPU in a burst of 100 pods): callers must not modify them.
func (w *Workers) Pods() []*corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(w.workers))
	for _, pw := range w.workers {
		if p := pw.sharedPod(); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// ContainersTerminated implements volumemanager.PodStates.
func (w *Workers) ContainersTerminated(uid types.UID) bool {
	w.mu.Lock()
	pw, ok := w.workers[uid]
	present := w.present[uid]
	w.mu.Unlock()
	if !ok {
		return !present
	}
	return pw.isTerminated()
}

// lookup returns the worker of the named pod.
func (w *Workers) lookup(namespace, name string) (*podWorker, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	uid, ok := w.byName[types.NamespacedName{Namespace: namespace, Name: name}]
	if !ok {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, ErrNotFound)
	}
	return w.workers[uid], nil
}

// ContainerID returns the runtime ID (without the volplane:// scheme) of
// the running instance of the container, for exec and attach; ErrNotFound
// when none runs.
func (w *Workers) ContainerID(namespace, pod, container string) (string, error) {
	pw, err := w.lookup(namespace, pod)
	if err != nil {
		return "", err
	}
	inst := pw.instance(container, false)
	if inst == nil || !inst.running() {
		return "", fmt.Errorf("container not found (%q): %w", container, ErrNotFound)
	}
	return inst.ID, nil
}

// ContainerLogPath returns the host path of the container's log: the
// newest instance's, or with previous the one before it.
func (w *Workers) ContainerLogPath(namespace, pod, container string, previous bool) (string, error) {
	pw, err := w.lookup(namespace, pod)
	if err != nil {
		return "", err
	}
	inst := pw.instance(container, previous)
	if inst == nil {
		if previous {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found: %w", container, pod, ErrNotFound)
		}
		return "", fmt.Errorf("container %q in pod %q not found: %w", container, pod, ErrNotFound)
	}
	return pw.logPath(inst), nil
}

// ContainerLog chooses the log `kubectl logs` reads as the kubelet does,
// from the container's status: with previous the last terminated
// instance; else the running or terminated one, or for a container
// waiting to restart the one that last terminated. It returns the runtime
// ID and the log's host path; the error's text is the kubelet's.
func (w *Workers) ContainerLog(namespace, pod, container string, previous bool) (id, path string, err error) {
	pw, err := w.lookup(namespace, pod)
	if err != nil {
		return "", "", err
	}
	p := pw.currentPod()
	if st, ok := w.status.get(p.UID); ok {
		p.Status = st
	}
	cs, ok := statusOf(append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...), container)
	if !ok {
		return "", "", fmt.Errorf("container %s is not valid for pod %s: %w", container, pod, ErrNotFound)
	}
	last := cs.LastTerminationState.Terminated
	var cid string
	switch {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", "", fmt.Errorf("previous terminated container %q in pod %q not found: %w", container, pod, ErrNotFound)
		}
		cid = last.ContainerID
	case cs.State.Running != nil:
		cid = cs.ContainerID
	case cs.State.Terminated != nil && cs.State.Terminated.ContainerID != "":
		cid = cs.State.Terminated.ContainerID
	case last != nil && last.ContainerID != "":
		cid = last.ContainerID
	default:
		reason := ""
		if cs.State.Waiting != nil {
			reason = cs.State.Waiting.Reason
		}
		return "", "", fmt.Errorf("container %q in pod %q is waiting to start: %s: %w", container, pod, reason, ErrNotFound)
	}
	cid = strings.TrimPrefix(cid, containerIDScheme)
	inst := pw.instanceByID(cid)
	if inst == nil {
		return "", "", fmt.Errorf("container %q in pod %q: instance %s is gone: %w", container, pod, cid, ErrNotFound)
	}
	return cid, pw.logPath(inst), nil
}

// PodSandboxID returns the runtime ID of the pod's ready sandbox, for
// port forwarding.
func (w *Workers) PodSandboxID(namespace, pod string) (string, error) {
	pw, err := w.lookup(namespace, pod)
	if err != nil {
		return "", err
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.runtime == nil || pw.runtime.readySandbox() == nil {
		return "", fmt.Errorf("pod %s/%s has no sandbox: %w", namespace, pod, ErrNotFound)
	}
	return pw.runtime.readySandbox().ID, nil
}

// Pod returns the pod bound to this node with the status the agent last
// computed for it.
func (w *Workers) Pod(namespace, name string) (*corev1.Pod, bool) {
	pw, err := w.lookup(namespace, name)
	if err != nil || pw.orphan {
		return nil, false
	}
	p := pw.currentPod()
	if st, ok := w.status.get(p.UID); ok {
		p.Status = st
	}
	return p, true
}

// RunningPods returns the pods with workers, each with the status the
// agent last computed for it, for the kubelet API's /pods.
func (w *Workers) RunningPods() []*corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(w.workers))
	for _, pw := range w.workers {
		p := pw.currentPod()
		if p == nil || pw.orphan {
			continue
		}
		if st, ok := w.status.get(p.UID); ok {
			p.Status = st
		}
		out = append(out, p)
	}
	return out
}
