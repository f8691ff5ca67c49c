package volumebinding

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	fwk "k8s.io/kube-scheduler/framework"

	"volplane/internal/logging"
)

// reservation is what Reserve assumed for the chosen node.
type reservation struct {
	node string
	// bindings: the volumes to write, already bound to their claim in
	// the cache (only those whose write changes something).
	bindings []binding
	// provisions: the claims to annotate with the selected node.
	provisions []*v1.PersistentVolumeClaim
}

// Reserve assumes the chosen volumes bound to their claims in the
// volume cache, and the provisioned claims' node, so that pods scheduled
// meanwhile do not take the same volumes.
func (p *Plugin) Reserve(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeName string) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	s.mu.Lock()
	nv := s.byNode[nodeName]
	s.mu.Unlock()
	if nv == nil || (len(nv.bindings) == 0 && len(nv.provisions) == 0) {
		s.allBound = true
		return nil
	}
	r := &reservation{node: nodeName}
	for _, b := range nv.bindings {
		pv, dirty, err := storagehelpers.GetBindVolumeToClaim(b.pv, b.claim)
		if err != nil {
			p.revert(r)
			return fwk.AsStatus(err)
		}
		if !dirty {
			continue
		}
		if err := p.volumes.assume(pv); err != nil {
			p.revert(r)
			return fwk.AsStatus(err)
		}
		r.bindings = append(r.bindings, binding{pv: pv, claim: b.claim})
	}
	p.mu.Lock()
	for _, pr := range nv.provisions {
		claim := pr.claim.DeepCopy()
		metav1.SetMetaDataAnnotation(&claim.ObjectMeta, storagehelpers.AnnSelectedNode, nodeName)
		p.selected[claim.Namespace+"/"+claim.Name] = nodeName
		r.provisions = append(r.provisions, claim)
	}
	p.mu.Unlock()
	s.reserved = r
	return nil
}

// revert drops what a reservation assumed.
func (p *Plugin) revert(r *reservation) {
	for _, b := range r.bindings {
		p.volumes.restore(b.pv.Name)
	}
	p.mu.Lock()
	for _, c := range r.provisions {
		key := c.Namespace + "/" + c.Name
		if p.selected[key] == r.node {
			delete(p.selected, key)
		}
	}
	p.mu.Unlock()
}

// Unreserve drops the pod's assumptions. It is idempotent.
func (p *Plugin) Unreserve(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeName string) {
	s, err := readState(cs)
	if err != nil || s.reserved == nil || s.reserved.node != nodeName {
		return
	}
	p.revert(s.reserved)
}

// PreBindPreFlight says whether PreBind has anything to do.
func (p *Plugin) PreBindPreFlight(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeName string) (*fwk.PreBindPreFlightResult, *fwk.Status) {
	result := &fwk.PreBindPreFlightResult{AllowParallel: true}
	s, err := readState(cs)
	if err != nil {
		return result, fwk.AsStatus(err)
	}
	if s.allBound {
		return result, fwk.NewStatus(fwk.Skip)
	}
	if s.reserved == nil || s.reserved.node != nodeName {
		return result, fwk.AsStatus(fmt.Errorf("volume binding: nothing reserved for node %q", nodeName))
	}
	return result, nil
}

// PreBind writes what upstream's scheduler writes, the chosen volumes'
// claimRef and the provisioned claims' selected-node annotation, and
// waits until the PV controller has bound every claim (or the bind
// timeout). An error sends the pod back to be scheduled again; the
// assumptions not yet written are dropped. As upstream, a write that
// went through is not undone: the PV controller completes a binding the
// scheduler started, and removes a selected-node annotation whose
// provisioning fails.
func (p *Plugin) PreBind(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := readState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.allBound {
		return nil
	}
	r := s.reserved
	if r == nil || r.node != nodeName {
		return fwk.AsStatus(fmt.Errorf("volume binding: nothing reserved for node %q", nodeName))
	}
	defer p.revertProvisions(r)
	if err := p.write(ctx, r); err != nil {
		return fwk.AsStatus(err)
	}
	if err := p.waitBound(ctx, pod, r, s.claims); err != nil {
		return fwk.AsStatus(fmt.Errorf("binding volumes: %w", err))
	}
	logging.FromContext(ctx).Info("volumes bound", "pod", pod.Namespace+"/"+pod.Name, "node", nodeName,
		"volumes", len(r.bindings), "provisioned", len(r.provisions))
	return nil
}

// revertProvisions forgets Reserve's node choices once PreBind is over:
// by then they are written (and the claim informer carries them) or the
// pod is rescheduled.
func (p *Plugin) revertProvisions(r *reservation) {
	p.revert(&reservation{node: r.node, provisions: r.provisions})
}

// write makes the API updates, volumes first, then claims. On an error
// the volumes not yet written are restored in the cache.
func (p *Plugin) write(ctx context.Context, r *reservation) error {
	for i, b := range r.bindings {
		pv, err := p.client.CoreV1().PersistentVolumes().Update(ctx, b.pv, metav1.UpdateOptions{})
		if err != nil {
			for _, rest := range r.bindings[i:] {
				p.volumes.restore(rest.pv.Name)
			}
			return fmt.Errorf("binding persistentvolume %q to claim %s/%s: %w", b.pv.Name, b.claim.Namespace, b.claim.Name, err)
		}
		r.bindings[i].pv = pv
	}
	for i, c := range r.provisions {
		claim, err := p.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("selecting node %q for claim %s/%s: %w", r.node, c.Namespace, c.Name, err)
		}
		r.provisions[i] = claim
	}
	return nil
}

// recheck is how often waitBound looks again with no volume or claim
// event: for the pod's deletion and the node's labels.
const recheck = time.Second

// waitBound waits until checkBound says done, fails, or the bind
// timeout ends.
func (p *Plugin) waitBound(ctx context.Context, pod *v1.Pod, r *reservation, claims *podClaims) error {
	ctx, cancel := context.WithTimeout(ctx, p.args.BindTimeout)
	defer cancel()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	keys := waitKeys(r, claims)
	for {
		changed := p.sig.changes(keys)
		done, err := p.checkBound(pod, r, claims)
		if err != nil || done {
			p.sig.forget(keys, changed)
			return err
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-tick.C:
		}
		p.sig.forget(keys, changed)
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the claims to be bound: %w", context.Cause(ctx))
		}
	}
}

// checkBound looks at the informers' objects, as upstream's
// checkBindings: done when every claim is bound; an error when the
// binding cannot complete (pod deleted, a claimRef reset, provisioning
// failed and the selected node removed, a volume the node does not
// reach).
func (p *Plugin) checkBound(pod *v1.Pod, r *reservation, claims *podClaims) (bool, error) {
	node, err := p.nodes.Get(r.node)
	if err != nil {
		return false, fmt.Errorf("failed to get node %q: %w", r.node, err)
	}
	if _, err := p.pods.Pods(pod.Namespace).Get(pod.Name); apierrors.IsNotFound(err) {
		return false, fmt.Errorf("pod does not exist any more: %w", err)
	}
	for _, b := range r.bindings {
		pv := p.volumes.apiObject(b.pv.Name)
		if pv == nil {
			return false, fmt.Errorf("persistentvolume %q is gone", b.pv.Name)
		}
		if newer(b.pv.ResourceVersion, pv.ResourceVersion) {
			return false, nil // our write has not reached the informer yet
		}
		if err := storagehelpers.CheckNodeAffinity(pv, node.Labels); err != nil {
			return false, fmt.Errorf("pv %q node affinity doesn't match node %q: %w", pv.Name, node.Name, err)
		}
		if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID == "" {
			return false, fmt.Errorf("ClaimRef got reset for pv %q", pv.Name)
		}
	}
	for _, c := range r.provisions {
		claim, err := p.claims.PersistentVolumeClaims(c.Namespace).Get(c.Name)
		if err != nil {
			return false, fmt.Errorf("failed to check provisioning pvc: %w", err)
		}
		if newer(c.ResourceVersion, claim.ResourceVersion) {
			return false, nil
		}
		if claim.Annotations[storagehelpers.AnnSelectedNode] != r.node {
			return false, fmt.Errorf("provisioning failed for PVC %q", claim.Name)
		}
		if claim.Spec.VolumeName != "" {
			pv := p.volumes.apiObject(claim.Spec.VolumeName)
			if pv == nil {
				return false, nil // not seen yet
			}
			if err := storagehelpers.CheckNodeAffinity(pv, node.Labels); err != nil {
				return false, fmt.Errorf("pv %q node affinity doesn't match node %q: %w", pv.Name, node.Name, err)
			}
		}
	}
	for _, c := range claims.delayed {
		claim, err := p.claims.PersistentVolumeClaims(c.Namespace).Get(c.Name)
		if err != nil {
			return false, fmt.Errorf("failed to check pvc %s/%s: %w", c.Namespace, c.Name, err)
		}
		if !fullyBound(claim) {
			return false, nil
		}
	}
	return true, nil
}

// signal wakes the waiters of a key (a claim's "namespace/name", a
// volume's "pv/<name>") at its next change. Keyed, so that a change wakes
// the pods waiting for that object only, not every waiting pod (1,000
// pods waiting at once and a few thousand claim and volume events made a
// broadcast cost millions of checks).
type signal struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

func newSignal() *signal { return &signal{waiters: map[string][]chan struct{}{}} }

// changes returns a channel closed at the next notify of any of keys.
func (s *signal) changes(keys []string) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.waiters[k] = append(s.waiters[k], ch)
	}
	return ch
}

// notify wakes the waiters of key; a channel registered under several
// keys is closed once and dropped from the others when they fire.
func (s *signal) notify(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiters[key] {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	delete(s.waiters, key)
}

// forget drops a waiter's channel from keys (it stopped waiting).
func (s *signal) forget(keys []string, ch <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.waiters[k] = slices.DeleteFunc(s.waiters[k], func(c chan struct{}) bool { return c == ch })
		if len(s.waiters[k]) == 0 {
			delete(s.waiters, k)
		}
	}
}

func claimSignalKey(namespace, name string) string { return namespace + "/" + name }

func volumeSignalKey(name string) string { return "pv/" + name }

// waitKeys are the objects whose changes can end a pod's wait: its
// delayed claims (a provisioned volume's events wake its claim's key)
// and the volumes it binds.
func waitKeys(r *reservation, claims *podClaims) []string {
	var keys []string
	for _, c := range claims.delayed {
		keys = append(keys, claimSignalKey(c.Namespace, c.Name))
	}
	for _, b := range r.bindings {
		keys = append(keys, volumeSignalKey(b.pv.Name))
	}
	return keys
}
