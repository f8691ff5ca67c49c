package binder

import (
	"time"

	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
	"volplane/internal/keylock"
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

func newWorkQueue(name string) keyQueue { return controller.NewQueue(name) }

func volumeLockKey(name string) string { return "pv/" + name }
func claimLockKey(key string) string   { return "pvc/" + key }

// lockPair locks a volume (if named) and a claim: a bind, a sync and an
// unbind of the same volume or claim never interleave. The volume's key
// sorts first, so its lock is taken before the claim's.
func lockPair(l *keylock.Locks, volume, claim string) (unlock func()) {
	if volume == "" {
		return l.Lock(claimLockKey(claim))
	}
	return l.Lock(volumeLockKey(volume), claimLockKey(claim))
}
