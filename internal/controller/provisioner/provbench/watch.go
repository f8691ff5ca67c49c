package provbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// marker watches one kind of the bench's objects and records, per name,
// when the watch first saw it reach the figure's end (reached) and when
// it saw it deleted.
type marker struct {
	reached func(runtime.Object) (name string, ok bool)
	mu      sync.Mutex
	end     map[string]*mark
	gone    map[string]*mark
	w       *watchtools.RetryWatcher
	done    chan struct{}
	err     error
}

type mark struct {
	at time.Time
	ch chan struct{}
}

// listWatch lists and watches one resource of the bench's namespace,
// selected by the bench's label.
type listWatch struct {
	list  func(context.Context, metav1.ListOptions) (string, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func claimsLW(cs kubernetes.Interface) listWatch {
	c := cs.CoreV1().PersistentVolumeClaims(namespace)
	return listWatch{
		list: func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.List(ctx, o)
			if err != nil {
				return "", err
			}
			return l.ResourceVersion, nil
		},
		watch: c.Watch,
	}
}

func podsLW(cs kubernetes.Interface) listWatch {
	c := cs.CoreV1().Pods(namespace)
	return listWatch{
		list: func(ctx context.Context, o metav1.ListOptions) (string, error) {
			l, err := c.List(ctx, o)
			if err != nil {
				return "", err
			}
			return l.ResourceVersion, nil
		},
		watch: c.Watch,
	}
}

func startMarker(ctx context.Context, lw listWatch, reached func(runtime.Object) (string, bool)) (*marker, error) {
	// The API may close a watch under load: a retry watcher resumes from
	// the last resource version seen, so no event is lost.
	rv, err := lw.list(ctx, metav1.ListOptions{LabelSelector: benchLabel})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, rv, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = benchLabel
			return lw.watch(ctx, o)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	m := &marker{reached: reached, end: map[string]*mark{}, gone: map[string]*mark{}, w: w, done: make(chan struct{})}
	go m.run()
	return m, nil
}

func (m *marker) run() {
	defer close(m.done)
	for ev := range m.w.ResultChan() {
		now := time.Now()
		switch ev.Type {
		case watch.Error:
			m.err = fmt.Errorf("watch: %v", ev.Object)
			return
		case watch.Deleted:
			if o, ok := ev.Object.(metav1.Object); ok {
				m.set(m.gone, o.GetName(), now)
			}
		case watch.Added, watch.Modified:
			if name, ok := m.reached(ev.Object); ok {
				m.set(m.end, name, now)
			}
		}
	}
	m.err = errors.New("watch closed")
}

func (m *marker) stop() {
	m.w.Stop()
	<-m.done
	<-m.w.Done()
}

// claimBound is the claims' end: phase Bound.
func claimBound(o runtime.Object) (string, bool) {
	c, ok := o.(*v1.PersistentVolumeClaim)
	return nameIf(c, ok && c.Status.Phase == v1.ClaimBound)
}

// podRunning is the pods' end: phase Running, every container ready.
func podRunning(o runtime.Object) (string, bool) {
	p, ok := o.(*v1.Pod)
	if !ok || p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return "", false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return "", false
		}
	}
	return p.Name, true
}

func nameIf(o metav1.Object, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return o.GetName(), true
}

func markFor(m map[string]*mark, name string) *mark {
	k, ok := m[name]
	if !ok {
		k = &mark{ch: make(chan struct{})}
		m[name] = k
	}
	return k
}

// set records the first time of name in m.
func (m *marker) set(in map[string]*mark, name string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := markFor(in, name)
	if k.at.IsZero() {
		k.at = at
		close(k.ch)
	}
}

func (m *marker) mark(in map[string]*mark, name string) *mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	return markFor(in, name)
}

// wait blocks until name reached the end (or is gone, when gone is set)
// and returns when the watch saw it; ctx's deadline detects a hang.
func (m *marker) wait(ctx context.Context, name string, gone bool) (time.Time, error) {
	in := m.end
	if gone {
		in = m.gone
	}
	k := m.mark(in, name)
	select {
	case <-k.ch:
		m.mu.Lock()
		defer m.mu.Unlock()
		return k.at, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("waiting for %s: %w", name, ctx.Err())
	case <-m.done:
		return time.Time{}, m.err
	}
}
