package binder

import (
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// keyQueue is the part of client-go's rate-limiting work queue the
// controller uses; tests substitute a queue they step by hand.
type keyQueue interface {
	Add(key string)
	AddRateLimited(key string)
	AddAfter(key string, d time.Duration)
	Forget(key string)
	Get() (string, bool)
	Done(key string)
	Len() int
	ShutDown()
}

var _ keyQueue = workqueue.TypedRateLimitingInterface[string](nil)

func newWorkQueue(name string) keyQueue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
	)
}

// keyLocks serialises the work on one object: a bind, a sync and an
// unbind of the same volume or claim never interleave. Whoever needs both
// takes the volume's lock before the claim's, so two of them never wait
// on each other.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func newKeyLocks() *keyLocks { return &keyLocks{m: map[string]*keyLock{}} }

func (l *keyLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()
	kl.mu.Lock()
	return func() {
		kl.mu.Unlock()
		l.mu.Lock()
		kl.refs--
		if kl.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

func volumeLockKey(name string) string { return "pv/" + name }
func claimLockKey(key string) string   { return "pvc/" + key }

// lockPair locks a volume (if named) and then a claim.
func (l *keyLocks) lockPair(volume, claim string) (unlock func()) {
	var uv func()
	if volume != "" {
		uv = l.lock(volumeLockKey(volume))
	}
	uc := l.lock(claimLockKey(claim))
	return func() {
		uc()
		if uv != nil {
			uv()
		}
	}
}
