package schedbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"volplane/internal/node/podbench"
)

// phaseTracker notes, for the volume shape, when the bench first sees
// each claim's volume carry its claimRef (the scheduler's PreBind write)
// and the claim Bound (the PV controller's last write), both keyed by
// claim name, so that a pod's time splits into its phases.
type phaseTracker struct {
	stopCh  chan struct{}
	mu      sync.Mutex
	claimed map[string]time.Time // claim name -> its volume's claimRef seen
	bound   map[string]time.Time // claim name -> claim Bound seen
}

func startPhaseTracker(ctx context.Context, cs kubernetes.Interface) (*phaseTracker, error) {
	f := informers.NewSharedInformerFactory(cs, 0)
	t := &phaseTracker{stopCh: make(chan struct{}), claimed: map[string]time.Time{}, bound: map[string]time.Time{}}
	first := func(m map[string]time.Time, key string) {
		now := time.Now()
		t.mu.Lock()
		if _, seen := m[key]; !seen {
			m[key] = now
		}
		t.mu.Unlock()
	}
	onVolume := func(obj any) {
		if pv, ok := obj.(*v1.PersistentVolume); ok && pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == namespace {
			first(t.claimed, pv.Spec.ClaimRef.Name)
		}
	}
	onClaim := func(obj any) {
		if pvc, ok := obj.(*v1.PersistentVolumeClaim); ok && pvc.Namespace == namespace && pvc.Status.Phase == v1.ClaimBound {
			first(t.bound, pvc.Name)
		}
	}
	pvs := f.Core().V1().PersistentVolumes().Informer()
	pvcs := f.Core().V1().PersistentVolumeClaims().Informer()
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		fn  func(any)
	}{{pvs, onVolume}, {pvcs, onClaim}} {
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    h.fn,
			UpdateFunc: func(_, obj any) { h.fn(obj) },
		}); err != nil {
			return nil, fmt.Errorf("watch volumes and claims: %w", err)
		}
	}
	f.Start(t.stopCh)
	if !cache.WaitForCacheSync(ctx.Done(), pvs.HasSynced, pvcs.HasSynced) {
		close(t.stopCh)
		return nil, errors.New("volume and claim informers did not sync")
	}
	return t, nil
}

func (t *phaseTracker) stop() { close(t.stopCh) }

// phases are the volume shape's per-pod phase durations.
type phases struct {
	// toClaimRef: pod create -> its volume's claimRef seen (scheduling
	// cycle, PreBind's volume write); toBound: claimRef -> claim Bound
	// (the PV controller); toNode: claim Bound -> spec.nodeName (PreBind
	// noticing, the binding write).
	toClaimRef, toBound, toNode []time.Duration
	missing                     int
}

// split splits each pod's time at the tracker's notes; created and
// scheduled are by pod index, claimName names pod i's claim.
func (t *phaseTracker) split(created []time.Time, scheduled func(i int) time.Time, claimName func(i int) string) phases {
	t.mu.Lock()
	defer t.mu.Unlock()
	var p phases
	for i := range created {
		ref, okRef := t.claimed[claimName(i)]
		bound, okBound := t.bound[claimName(i)]
		if !okRef || !okBound {
			p.missing++
			continue
		}
		p.toClaimRef = append(p.toClaimRef, ref.Sub(created[i]))
		p.toBound = append(p.toBound, bound.Sub(ref))
		p.toNode = append(p.toNode, scheduled(i).Sub(bound))
	}
	return p
}

// print writes the phases' p50 and p99.
func (p phases) print(out io.Writer) {
	if len(p.toClaimRef) == 0 {
		return
	}
	fmt.Fprintf(out, "\nvolume pods' phases (as the bench saw them)         %10s %10s\n", "p50", "p99")
	for _, row := range []struct {
		label string
		ds    []time.Duration
	}{
		{"create -> volume claimRef (scheduling, PreBind write)", p.toClaimRef},
		{"claimRef -> claim Bound (PV controller)", p.toBound},
		{"claim Bound -> spec.nodeName (PreBind wake, binding)", p.toNode},
	} {
		fmt.Fprintf(out, "%-52s %10s %10s\n", row.label, podbench.Millis(percentile(row.ds, 50)), podbench.Millis(percentile(row.ds, 99)))
	}
	if p.missing > 0 {
		fmt.Fprintf(out, "(%d pods without both notes left out)\n", p.missing)
	}
}
