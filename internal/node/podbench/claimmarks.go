package podbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ClaimMarks notes, per claim of one namespace, when the bench's
// informers first saw each of a few named steps of its life: a step is
// a test of the claim, or of a volume whose claimRef names it. Benches
// split a claim's or a pod's time between components with it.
type ClaimMarks struct {
	stopCh chan struct{}
	mu     sync.Mutex
	at     map[string]map[string]time.Time // step -> claim name -> first seen
}

// ClaimStep is one step a ClaimMarks notes: Claim or Volume tests the
// object (the other is nil).
type ClaimStep struct {
	Name   string
	Claim  func(*v1.PersistentVolumeClaim) bool
	Volume func(*v1.PersistentVolume) bool
}

// StartClaimMarks watches claims and volumes until Stop and notes steps
// for the claims of namespace.
func StartClaimMarks(ctx context.Context, cs kubernetes.Interface, namespace string, steps ...ClaimStep) (*ClaimMarks, error) {
	m := &ClaimMarks{stopCh: make(chan struct{}), at: map[string]map[string]time.Time{}}
	for _, s := range steps {
		m.at[s.Name] = map[string]time.Time{}
	}
	note := func(step, claim string, now time.Time) {
		m.mu.Lock()
		if _, seen := m.at[step][claim]; !seen {
			m.at[step][claim] = now
		}
		m.mu.Unlock()
	}
	onVolume := func(obj any) {
		now := time.Now()
		pv, ok := obj.(*v1.PersistentVolume)
		if !ok || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Namespace != namespace {
			return
		}
		for _, s := range steps {
			if s.Volume != nil && s.Volume(pv) {
				note(s.Name, pv.Spec.ClaimRef.Name, now)
			}
		}
	}
	onClaim := func(obj any) {
		now := time.Now()
		pvc, ok := obj.(*v1.PersistentVolumeClaim)
		if !ok || pvc.Namespace != namespace {
			return
		}
		for _, s := range steps {
			if s.Claim != nil && s.Claim(pvc) {
				note(s.Name, pvc.Name, now)
			}
		}
	}
	f := informers.NewSharedInformerFactory(cs, 0)
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
	f.Start(m.stopCh)
	if !cache.WaitForCacheSync(ctx.Done(), pvs.HasSynced, pvcs.HasSynced) {
		close(m.stopCh)
		return nil, errors.New("volume and claim informers did not sync")
	}
	return m, nil
}

// Stop ends the watches.
func (m *ClaimMarks) Stop() { close(m.stopCh) }

// At is when step was first seen for claim.
func (m *ClaimMarks) At(step, claim string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.at[step][claim]
	return t, ok
}
