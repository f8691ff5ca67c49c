package podbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// tracker watches the bench's pods and records, per pod name, when the
// watch first saw it Running with every container ready and when it saw
// it deleted.
type tracker struct {
	mu   sync.Mutex
	up   map[string]*mark
	gone map[string]*mark
	w    *watchtools.RetryWatcher
	done chan struct{}
	err  error
}

type mark struct {
	at time.Time
	ch chan struct{}
}

func startTracker(ctx context.Context, cs kubernetes.Interface) (*tracker, error) {
	// The API may close a watch under load (it did during a burst of
	// 100): a retry watcher resumes from the last resource version seen,
	// so no event is lost.
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: benchLabel})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = benchLabel
		return cs.CoreV1().Pods(namespace).Watch(ctx, o)
	}}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	t := &tracker{up: map[string]*mark{}, gone: map[string]*mark{}, w: w, done: make(chan struct{})}
	go t.run()
	return t, nil
}

func (t *tracker) run() {
	defer close(t.done)
	for ev := range t.w.ResultChan() {
		now := time.Now()
		switch ev.Type {
		case watch.Error:
			t.err = fmt.Errorf("pod watch: %v", ev.Object)
			return
		case watch.Deleted:
			if p, ok := ev.Object.(*v1.Pod); ok {
				t.set(t.gone, p.Name, now)
			}
		case watch.Added, watch.Modified:
			if p, ok := ev.Object.(*v1.Pod); ok && runningReady(p) {
				t.set(t.up, p.Name, now)
			}
		}
	}
	t.err = errors.New("pod watch closed")
}

func (t *tracker) stop() {
	t.w.Stop()
	<-t.done
	<-t.w.Done()
}

// runningReady is the figure's end: phase Running, every container ready.
func runningReady(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

// markFor returns the mark of name in m, making it.
func markFor(m map[string]*mark, name string) *mark {
	k, ok := m[name]
	if !ok {
		k = &mark{ch: make(chan struct{})}
		m[name] = k
	}
	return k
}

// set records the first time of name in m.
func (t *tracker) set(m map[string]*mark, name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := markFor(m, name)
	if k.at.IsZero() {
		k.at = at
		close(k.ch)
	}
}

// expect returns a channel closed once name is seen Running and ready.
func (t *tracker) expect(name string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return markFor(t.up, name).ch
}

// expectGone returns a channel closed once name is seen deleted.
func (t *tracker) expectGone(name string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return markFor(t.gone, name).ch
}

func (t *tracker) running(name string) time.Time { return t.at(t.up, name) }
func (t *tracker) deleted(name string) time.Time { return t.at(t.gone, name) }

func (t *tracker) at(m map[string]*mark, name string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return markFor(m, name).at
}
