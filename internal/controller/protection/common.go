package protection

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	"volplane/internal/controller"
)

const (
	// PVCFinalizer keeps a claim while a pod uses it.
	PVCFinalizer = "kubernetes.io/pvc-protection"
	// PVFinalizer keeps a volume while it is bound.
	PVFinalizer = "kubernetes.io/pv-protection"
)

// Config configures both protection controllers.
type Config struct {
	// Workers per controller; 0 takes the manager's default.
	Workers int
	// DisableUnusedCondition stops pvc-protection from keeping the
	// Unused condition of bound claims.
	DisableUnusedCondition bool
}

// Validate checks c.
func (c *Config) Validate() error {
	if c.Workers < 0 {
		return fmt.Errorf("protection controllers: workers %d < 0", c.Workers)
	}
	return nil
}

// AddFlags binds c's flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.DisableUnusedCondition, "disable-pvc-unused-condition", false,
		"Do not keep the Unused condition (and its since-when time) on bound claims.")
}

// needsFinalizer is upstream's NeedToAddFinalizer: not being deleted and
// without the finalizer.
func needsFinalizer(m metav1.Object, finalizer string) bool {
	return m.GetDeletionTimestamp() == nil && !slices.Contains(m.GetFinalizers(), finalizer)
}

// deletionCandidate is upstream's IsDeletionCandidate: being deleted and
// still holding the finalizer.
func deletionCandidate(m metav1.Object, finalizer string) bool {
	return m.GetDeletionTimestamp() != nil && slices.Contains(m.GetFinalizers(), finalizer)
}

func withoutFinalizer(finalizers []string, finalizer string) []string {
	return slices.DeleteFunc(slices.Clone(finalizers), func(f string) bool { return f == finalizer })
}

// runQueue runs workers on q until ctx is done.
func runQueue(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], workers int, syncFn func(context.Context, string) error) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				_ = controller.Process(ctx, q, key, syncFn)
				q.Done(key)
			}
		})
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}
