package binder

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"volplane/internal/volumematch"
)

// store is the binder's view of PersistentVolumes and claims: the newest
// version it knows of each object, whether that came from the informer or
// from the response to its own write. Acting on the informer alone would
// make the controller redo (and conflict on) writes it has just made, as
// upstream's controller explains for its own caches.
//
// It also keeps the match index of bindable volumes, the volumes pre-bound
// to each claim, and the reservations of volumes chosen for a claim whose
// bind is in flight. Objects in the store are shared: never modify them,
// copy first.
type store struct {
	mu       sync.Mutex
	volumes  map[string]*v1.PersistentVolume
	claims   map[string]*v1.PersistentVolumeClaim
	index    *volumematch.Index
	prebound map[string]map[string]struct{} // claim key -> volumes whose claimRef names it
	reserved map[string]string              // volume -> claim key
	// firstSeen is when each claim was first seen unbound, for the bind
	// latency metric.
	firstSeen map[string]time.Time
}

func newStore() *store {
	return &store{
		volumes:   map[string]*v1.PersistentVolume{},
		claims:    map[string]*v1.PersistentVolumeClaim{},
		index:     volumematch.NewIndex(),
		prebound:  map[string]map[string]struct{}{},
		reserved:  map[string]string{},
		firstSeen: map[string]time.Time{},
	}
}

// newer reports whether resource version a is newer than b. The API's
// versions are etcd revisions; anything that does not parse is taken as
// newer, so that an unknown scheme never freezes the store.
func newer(a, b string) bool {
	ai, errA := strconv.ParseUint(a, 10, 64)
	bi, errB := strconv.ParseUint(b, 10, 64)
	if errA != nil || errB != nil {
		return a != b
	}
	return ai > bi
}

func claimRefKey(ref *v1.ObjectReference) string {
	return ref.Namespace + "/" + ref.Name
}

// bindable is whether pv belongs in the match index.
func (s *store) bindable(pv *v1.PersistentVolume) bool {
	if pv.Spec.ClaimRef != nil || pv.DeletionTimestamp != nil {
		return false
	}
	if _, ok := s.reserved[pv.Name]; ok {
		return false
	}
	// As upstream, only Available volumes: a new volume's own sync makes
	// it Available first, and binding one still Pending would race that
	// write into a conflict.
	return pv.Status.Phase == v1.VolumeAvailable
}

// putVolume stores pv if it is newer than the stored version. fromWrite
// marks the response to the controller's own write: it is dropped when
// the volume is no longer known, so that a late write response cannot
// bring back a deleted volume. It reports whether the store changed and
// whether the volume became bindable.
func (s *store) putVolume(pv *v1.PersistentVolume, fromWrite bool) (changed, arrived bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.volumes[pv.Name]
	switch {
	case ok && old.UID != pv.UID && fromWrite:
		return false, false
	case ok && old.UID == pv.UID && !newer(pv.ResourceVersion, old.ResourceVersion):
		return false, false
	case !ok && fromWrite:
		return false, false
	}
	if ok && old.Spec.ClaimRef != nil {
		s.unlinkPrebound(claimRefKey(old.Spec.ClaimRef), old.Name)
	}
	s.volumes[pv.Name] = pv
	if pv.Spec.ClaimRef != nil {
		k := claimRefKey(pv.Spec.ClaimRef)
		if s.prebound[k] == nil {
			s.prebound[k] = map[string]struct{}{}
		}
		s.prebound[k][pv.Name] = struct{}{}
	}
	was := s.index.Has(pv.Name)
	if s.bindable(pv) {
		s.index.Put(pv)
		return true, !was
	}
	s.index.Remove(pv.Name)
	return true, false
}

func (s *store) unlinkPrebound(claimKey, volume string) {
	if m := s.prebound[claimKey]; m != nil {
		delete(m, volume)
		if len(m) == 0 {
			delete(s.prebound, claimKey)
		}
	}
}

// deleteVolume forgets a volume and returns the last version stored.
func (s *store) deleteVolume(name string) *v1.PersistentVolume {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.volumes[name]
	if old == nil {
		return nil
	}
	delete(s.volumes, name)
	delete(s.reserved, name)
	s.index.Remove(name)
	if old.Spec.ClaimRef != nil {
		s.unlinkPrebound(claimRefKey(old.Spec.ClaimRef), name)
	}
	return old
}

// putClaim stores claim if it is newer than the stored version; fromWrite
// as for putVolume.
func (s *store) putClaim(claim *v1.PersistentVolumeClaim, fromWrite bool, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := claimKey(claim)
	old, ok := s.claims[key]
	switch {
	case ok && old.UID != claim.UID && fromWrite:
		return false
	case ok && old.UID == claim.UID && !newer(claim.ResourceVersion, old.ResourceVersion):
		return false
	case !ok && fromWrite:
		return false
	}
	if ok && old.UID != claim.UID {
		delete(s.firstSeen, key)
	}
	s.claims[key] = claim
	if claim.Status.Phase != v1.ClaimBound {
		if _, seen := s.firstSeen[key]; !seen {
			s.firstSeen[key] = now
		}
	}
	return true
}

// deleteClaim forgets a claim and returns the last version stored.
func (s *store) deleteClaim(key string) *v1.PersistentVolumeClaim {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.claims[key]
	delete(s.claims, key)
	delete(s.firstSeen, key)
	return old
}

func (s *store) volume(name string) *v1.PersistentVolume {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.volumes[name]
}

func (s *store) claim(key string) *v1.PersistentVolumeClaim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims[key]
}

// takeFirstSeen returns and forgets when the claim was first seen unbound.
func (s *store) takeFirstSeen(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.firstSeen[key]
	delete(s.firstSeen, key)
	return t, ok
}

// preboundVolume returns the volume pre-bound to claim that may be bound
// to it (name and namespace match, UID empty or equal, fits), the first by
// name when users pre-bound several; nil if there is none.
func (s *store) preboundVolume(claim *v1.PersistentVolumeClaim) *v1.PersistentVolume {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.preboundLocked(claim)
}

func (s *store) preboundLocked(claim *v1.PersistentVolumeClaim) *v1.PersistentVolume {
	m := s.prebound[claimKey(claim)]
	if len(m) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(m))
	// A volume that already carries this claim's UID wins over one that
	// only names it: it is a bind this controller (or the scheduler)
	// started.
	var byName *v1.PersistentVolume
	for _, n := range names {
		pv := s.volumes[n]
		if pv == nil || pv.Spec.ClaimRef == nil || !volumematch.PreboundFits(pv, claim) {
			continue
		}
		ref := pv.Spec.ClaimRef
		switch {
		case ref.UID == claim.UID:
			return pv
		case ref.UID == "" && byName == nil:
			byName = pv
		}
	}
	return byName
}

// mayFit is whether a bindable volume may fit claim: one does, or the
// index cannot tell.
func (s *store) mayFit(claim *v1.PersistentVolumeClaim) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pv, err := s.index.Best(claim)
	return pv != nil || err != nil
}

// volumesNaming returns the volumes whose claimRef names the claim key.
func (s *store) volumesNaming(key string) []*v1.PersistentVolume {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*v1.PersistentVolume
	for n := range s.prebound[key] {
		if pv := s.volumes[n]; pv != nil {
			out = append(out, pv)
		}
	}
	return out
}

// reserve takes the volume out of the index for claim key while its bind
// is in flight.
func (s *store) reserveLocked(volume, key string) {
	s.reserved[volume] = key
	s.index.Remove(volume)
}

// unreserve ends a reservation and reports whether the volume became
// bindable again.
func (s *store) unreserve(volume string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reserved[volume]; !ok {
		return false
	}
	delete(s.reserved, volume)
	if pv := s.volumes[volume]; pv != nil && s.bindable(pv) {
		s.index.Put(pv)
		return true
	}
	return false
}

// counts returns the number of volumes, claims and indexed volumes.
func (s *store) counts() (volumes, claims, indexed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.volumes), len(s.claims), s.index.Len()
}

// keys returns the names of every volume and the keys of every claim.
func (s *store) keys() (volumes, claims []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.volumes {
		volumes = append(volumes, n)
	}
	for k := range s.claims {
		claims = append(claims, k)
	}
	return volumes, claims
}

func claimKey(claim *v1.PersistentVolumeClaim) string {
	return claim.Namespace + "/" + claim.Name
}
