package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/logging"
)

// NewQueue returns a controller's rate-limited queue of object keys, with
// client-go's default controller backoff, named for its metrics.
func NewQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
	)
}

// Retry intervals of the CSI controllers' queues: upstream's
// external-provisioner and external-attacher defaults
// (--retry-interval-start 1s, --retry-interval-max 5m). client-go's
// default backoff grows to 1000 s, so a volume freed after a long
// refusal (DeleteVolume of a volume still in use) would wait up to
// about 16 minutes for its next try.
const (
	CSIRetryStart = time.Second
	CSIRetryMax   = 5 * time.Minute
)

// NewCSIQueue returns a CSI controller's queue of object keys: per-key
// exponential backoff from CSIRetryStart to CSIRetryMax, as upstream's
// sidecars, named for its metrics.
func NewCSIQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](CSIRetryStart, CSIRetryMax),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
	)
}

// Requeuer is the part of a rate-limited work queue Process uses.
type Requeuer interface {
	AddRateLimited(key string)
	Forget(key string)
}

// Process runs one sync of key. When it succeeds the key's backoff is
// forgotten; when it fails the key goes back with backoff, and the error is
// logged: at debug level for a conflict (another writer came first, the
// retry sees its write), as a warning otherwise. It returns the sync's
// error. The caller still marks the key Done.
func Process(ctx context.Context, q Requeuer, key string, sync func(context.Context, string) error) error {
	err := sync(ctx, key)
	if err == nil {
		q.Forget(key)
		return nil
	}
	log := logging.FromContext(ctx)
	if apierrors.IsConflict(err) {
		log.Debug("sync conflicted, retrying", "key", key, "err", err)
	} else {
		log.Warn("sync failed, retrying", "key", key, "err", err)
	}
	q.AddRateLimited(key)
	return err
}
