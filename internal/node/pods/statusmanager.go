package pods

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/logging"
)

// statusManager writes pod statuses to the API: a strategic merge patch
// of pods/status with the pod's UID as precondition, only when the status
// changed, as upstream's status manager. A failed write is retried by the
// pod worker's next sync.
type statusManager struct {
	client kubernetes.Interface
	now    func() time.Time

	mu      sync.Mutex
	entries map[types.UID]*statusEntry
}

type statusEntry struct {
	computed corev1.PodStatus  // the last status computed
	written  *corev1.PodStatus // the last status the API accepted
}

func newStatusManager(client kubernetes.Interface, now func() time.Time) *statusManager {
	return &statusManager{client: client, now: now, entries: map[types.UID]*statusEntry{}}
}

// get returns the last status computed for the pod.
func (m *statusManager) get(uid types.UID) (corev1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[uid]
	if !ok {
		return corev1.PodStatus{}, false
	}
	return *e.computed.DeepCopy(), true
}

func (m *statusManager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, uid)
}

// write records st as the pod's status and patches it into the API if it
// differs from what the API was last given.
func (m *statusManager) write(ctx context.Context, pod *corev1.Pod, st corev1.PodStatus) error {
	m.mu.Lock()
	e, ok := m.entries[pod.UID]
	if !ok {
		e = &statusEntry{}
		m.entries[pod.UID] = e
	}
	base := pod.Status
	if e.written != nil {
		base = *e.written
	}
	keepTransitionTimes(&st, base, metav1.NewTime(m.now()))
	st = normalize(st)
	e.computed = st
	unchanged := equality.Semantic.DeepEqual(base, st)
	m.mu.Unlock()
	if unchanged {
		return nil
	}
	patch, err := statusPatch(pod.UID, base, st)
	if err != nil {
		return err
	}
	out, err := m.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patching the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	logging.FromContext(ctx).Debug("pod timeline: status written", "phase", st.Phase)
	m.mu.Lock()
	written := normalize(out.Status)
	e.written = &written
	m.mu.Unlock()
	return nil
}

// keepTransitionTimes gives each condition the transition time of the
// same condition in base when its status did not change, now otherwise.
func keepTransitionTimes(st *corev1.PodStatus, base corev1.PodStatus, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if !c.LastTransitionTime.IsZero() {
			continue
		}
		c.LastTransitionTime = now
		for _, o := range base.Conditions {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
}

// normalize rounds a status through JSON, as the API stores it (times in
// seconds), so that comparisons see only real changes.
func normalize(st corev1.PodStatus) corev1.PodStatus {
	b, err := json.Marshal(st)
	if err != nil {
		return st
	}
	var out corev1.PodStatus
	if err := json.Unmarshal(b, &out); err != nil {
		return st
	}
	return out
}

// statusPatch is the strategic merge patch from old to new status, with
// metadata.uid as the precondition upstream's status manager sets.
func statusPatch(uid types.UID, old, new corev1.PodStatus) ([]byte, error) {
	ob, err := json.Marshal(corev1.Pod{Status: old})
	if err != nil {
		return nil, err
	}
	nb, err := json.Marshal(corev1.Pod{Status: new})
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(ob, nb, corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("computing the status patch: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	m["metadata"] = map[string]any{"uid": string(uid)}
	return json.Marshal(m)
}

// writeStatus computes the pod's status from the runtime and writes it.
func (pw *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, rt *podRuntime, terminal bool) error {
	if pw.orphan {
		return nil
	}
	old, ok := pw.w.status.get(pod.UID)
	if !ok {
		old = pod.Status
	}
	pw.mu.Lock()
	reasons := make(map[string]waitReason, len(pw.reasons))
	for k, v := range pw.reasons {
		reasons[k] = v
	}
	podReason := pw.podReason
	pw.mu.Unlock()
	st := computeStatus(statusInput{
		Pod:       pod,
		Runtime:   rt,
		Old:       old,
		Reasons:   reasons,
		Started:   pw.probes.started,
		Ready:     pw.probes.ready,
		Terminal:  terminal,
		PodReason: podReason,
		NodeIP:    pw.w.cfg.NodeIP,
		Now:       metav1.NewTime(pw.w.now()),
	})
	return pw.w.status.write(ctx, pod, st)
}
