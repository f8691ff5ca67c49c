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
)

// marker watches one kind of the bench's objects and records, per name,
// when its informer first saw it reach the figure's end (reached) and
// when it saw it deleted.
//
// An informer, not a bare watch: a retry watcher waits a second before
// it watches again, and under a burst the API ended its watch often
// (about 50 watch calls in a 500-claim run), so the last claims were
// seen Bound up to 3.8 s after the bench's claim informer saw them (a
// bench that under-reported the rate by up to 13%); an informer watches
// again at once and relists when it must.
type marker struct {
	reached func(runtime.Object) (name string, ok bool)
	mu      sync.Mutex
	end     map[string]*mark
	gone    map[string]*mark
	stopCh  chan struct{}
	done    chan struct{}
}

type mark struct {
	at time.Time
	ch chan struct{}
}

// listWatch lists and watches one resource of the bench's namespace,
// selected by the bench's label.
type listWatch struct {
	// client is the clientset, which says whether it can stream a list
	// (a fake cannot).
	client any
	object runtime.Object
	list   func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch  func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func claimsLW(cs kubernetes.Interface) listWatch {
	c := cs.CoreV1().PersistentVolumeClaims(namespace)
	return listWatch{
		client: cs,
		object: &v1.PersistentVolumeClaim{},
		list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.List(ctx, o)
		},
		watch: c.Watch,
	}
}

func podsLW(cs kubernetes.Interface) listWatch {
	c := cs.CoreV1().Pods(namespace)
	return listWatch{
		client: cs,
		object: &v1.Pod{},
		list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.List(ctx, o)
		},
		watch: c.Watch,
	}
}

func startMarker(ctx context.Context, lw listWatch, reached func(runtime.Object) (string, bool)) (*marker, error) {
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = benchLabel
			return lw.list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = benchLabel
			return lw.watch(ctx, o)
		},
	}, lw.client), lw.object, 0, nil)
	m := &marker{reached: reached, end: map[string]*mark{}, gone: map[string]*mark{},
		stopCh: make(chan struct{}), done: make(chan struct{})}
	seen := func(obj any) {
		now := time.Now()
		if o, ok := obj.(runtime.Object); ok {
			if name, ok := m.reached(o); ok {
				m.set(m.end, name, now)
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
		DeleteFunc: func(obj any) {
			now := time.Now()
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(metav1.Object); ok {
				m.set(m.gone, o.GetName(), now)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	go func() { defer close(m.done); inf.Run(m.stopCh) }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		m.stop()
		return nil, fmt.Errorf("list: %w", context.Cause(ctx))
	}
	return m, nil
}

func (m *marker) stop() {
	close(m.stopCh)
	<-m.done
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
		return time.Time{}, errors.New("watch stopped")
	}
}
