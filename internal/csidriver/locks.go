package csidriver

import (
	"sort"
	"sync"
)

// keyLocks gives one operation at a time per key (a volume ID, a volume
// name, a snapshot name): the CO should not send two calls for the same
// volume at once, but after a CO restart it may, and the second must wait
// rather than race.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func newKeyLocks() *keyLocks { return &keyLocks{locks: map[string]*keyLock{}} }

// lock takes the locks for keys in sorted order (so two callers taking
// overlapping sets cannot deadlock) and returns the function that
// releases them.
func (k *keyLocks) lock(keys ...string) (unlock func()) {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	held := make([]string, 0, len(keys))
	for i, key := range keys {
		if i > 0 && keys[i-1] == key {
			continue
		}
		k.mu.Lock()
		l := k.locks[key]
		if l == nil {
			l = &keyLock{}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		l.mu.Lock()
		held = append(held, key)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			k.mu.Lock()
			l := k.locks[held[i]]
			l.refs--
			if l.refs == 0 {
				delete(k.locks, held[i])
			}
			k.mu.Unlock()
			l.mu.Unlock()
		}
	}
}
