package keylock

import (
	"slices"
	"sync"
)

// Locks is a set of per-key locks. The zero value is not usable; call New.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// New returns an empty set of locks.
func New() *Locks { return &Locks{locks: map[string]*keyLock{}} }

// Lock takes the locks of keys in sorted order, so that two callers taking
// overlapping sets cannot deadlock, and returns the function that releases
// them. A key given twice is locked once.
func (k *Locks) Lock(keys ...string) (unlock func()) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*keyLock, 0, len(keys))
	for _, key := range keys {
		k.mu.Lock()
		l := k.locks[key]
		if l == nil {
			l = &keyLock{}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		l.mu.Lock()
		held = append(held, l)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			k.mu.Lock()
			held[i].refs--
			if held[i].refs == 0 {
				delete(k.locks, keys[i])
			}
			k.mu.Unlock()
			held[i].mu.Unlock()
		}
	}
}
