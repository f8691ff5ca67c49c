package provbench

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

	"volplane/internal/node/podbench"
)

// annStorageProvisioner is the PV controller's request to provision a
// claim, the first step of its path.
const annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"

// phaseTracker notes, per claim of the bench's namespace, when the bench
// first saw the PV controller ask for provisioning (the annotation), a
// volume carrying the claim's claimRef (the provisioner's PV write) and
// the claim Bound (the PV controller's last write), so that a claim's
// time splits into the three components' shares.
type phaseTracker struct {
	stopCh                   chan struct{}
	mu                       sync.Mutex
	asked, volume, boundSeen map[string]time.Time
}

func startPhaseTracker(ctx context.Context, cs kubernetes.Interface) (*phaseTracker, error) {
	f := informers.NewSharedInformerFactory(cs, 0)
	t := &phaseTracker{stopCh: make(chan struct{}), asked: map[string]time.Time{}, volume: map[string]time.Time{}, boundSeen: map[string]time.Time{}}
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
			first(t.volume, pv.Spec.ClaimRef.Name)
		}
	}
	onClaim := func(obj any) {
		pvc, ok := obj.(*v1.PersistentVolumeClaim)
		if !ok || pvc.Namespace != namespace {
			return
		}
		if _, ok := pvc.Annotations[annStorageProvisioner]; ok {
			first(t.asked, pvc.Name)
		}
		if pvc.Status.Phase == v1.ClaimBound {
			first(t.boundSeen, pvc.Name)
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

// Phases split the Immediate claims' time: create call -> provisioning
// asked (PV controller), -> PV written (provisioner: CreateVolume and the
// PV create), -> claim Bound (PV controller: the bind's writes).
type Phases struct {
	ToAsked, ToVolume, ToBound []time.Duration
	// Missing counts claims with a phase the informers did not see.
	Missing int
}

// split splits each claim's time; created[i] is claim i's create call.
func (t *phaseTracker) split(created []time.Time) Phases {
	t.mu.Lock()
	defer t.mu.Unlock()
	var p Phases
	for i, c := range created {
		name := claimName(i)
		asked, ok1 := t.asked[name]
		vol, ok2 := t.volume[name]
		bound, ok3 := t.boundSeen[name]
		if !ok1 || !ok2 || !ok3 {
			p.Missing++
			continue
		}
		p.ToAsked = append(p.ToAsked, asked.Sub(c))
		p.ToVolume = append(p.ToVolume, vol.Sub(asked))
		p.ToBound = append(p.ToBound, bound.Sub(vol))
	}
	return p
}

// rows are the phases' p50/p99 lines of the table.
func (p Phases) rows() []podbench.Row {
	if len(p.ToAsked) == 0 {
		return nil
	}
	ms := podbench.Millis
	pair := func(ds []time.Duration) string {
		return ms(podbench.Percentile(ds, 50)) + " / " + ms(podbench.Percentile(ds, 99))
	}
	note := "p50 / p99, as the bench's informers saw them"
	if p.Missing > 0 {
		note += fmt.Sprintf("; %d claims with a phase not seen", p.Missing)
	}
	return []podbench.Row{
		{Figure: "  created -> provisioning asked (PV controller)", Value: pair(p.ToAsked), Note: note},
		{Figure: "  asked -> PV written (provisioner, driver)", Value: pair(p.ToVolume)},
		{Figure: "  PV written -> claim Bound (PV controller)", Value: pair(p.ToBound)},
	}
}
