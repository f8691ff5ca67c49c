package podbench

import (
	"context"
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

// Marker watches one kind of a bench's objects, selected by a label, and
// records per name when its informer first saw the object reach the
// figure's end (Reached) and when it saw it deleted.
//
// An informer, not a bare watch: a retry watcher waits a second before
// it watches again, and under a burst the API ended such a watch often
// (about 50 watch calls in a 500-claim run of bench provision), so the
// last objects were seen at their end up to 3.8 s after an informer of
// the same process saw them. An informer watches again at once and
// relists when it must.
type Marker struct {
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

// ListWatch lists and watches one resource for a Marker.
type ListWatch struct {
	// Client is the clientset, which says whether it can stream a list
	// (a fake cannot).
	Client any
	Object runtime.Object
	List   func(context.Context, metav1.ListOptions) (runtime.Object, error)
	Watch  func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// ClaimsLW lists and watches the claims of namespace.
func ClaimsLW(cs kubernetes.Interface, namespace string) ListWatch {
	c := cs.CoreV1().PersistentVolumeClaims(namespace)
	return ListWatch{Client: cs, Object: &v1.PersistentVolumeClaim{},
		List:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		Watch: c.Watch}
}

// PodsLW lists and watches the pods of namespace.
func PodsLW(cs kubernetes.Interface, namespace string) ListWatch {
	c := cs.CoreV1().Pods(namespace)
	return ListWatch{Client: cs, Object: &v1.Pod{},
		List:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		Watch: c.Watch}
}

// StartMarker starts a Marker of the objects lw lists with label
// selector, and returns once its informer has synced.
func StartMarker(ctx context.Context, lw ListWatch, selector string, reached func(runtime.Object) (string, bool)) (*Marker, error) {
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return lw.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return lw.Watch(ctx, o)
		},
	}, lw.Client), lw.Object, 0, nil)
	m := &Marker{reached: reached, end: map[string]*mark{}, gone: map[string]*mark{},
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
		m.Stop()
		return nil, fmt.Errorf("list: %w", context.Cause(ctx))
	}
	return m, nil
}

// Stop ends the watch.
func (m *Marker) Stop() {
	close(m.stopCh)
	<-m.done
}

// Done is closed once the marker stopped.
func (m *Marker) Done() <-chan struct{} { return m.done }

// Expect returns a channel closed once name is seen at its end.
func (m *Marker) Expect(name string) <-chan struct{} { return m.markOf(m.end, name).ch }

// ExpectGone returns a channel closed once name is seen deleted.
func (m *Marker) ExpectGone(name string) <-chan struct{} { return m.markOf(m.gone, name).ch }

// Reached is when name was first seen at its end (zero if not yet).
func (m *Marker) Reached(name string) time.Time { return m.at(m.end, name) }

// Deleted is when name was seen deleted (zero if not yet).
func (m *Marker) Deleted(name string) time.Time { return m.at(m.gone, name) }

// Wait blocks until name reached its end (or is gone, when gone is set)
// and returns when the informer saw it; ctx's deadline detects a hang.
func (m *Marker) Wait(ctx context.Context, name string, gone bool) (time.Time, error) {
	in := m.end
	if gone {
		in = m.gone
	}
	select {
	case <-m.markOf(in, name).ch:
		return m.at(in, name), nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("waiting for %s: %w", name, ctx.Err())
	case <-m.done:
		return time.Time{}, fmt.Errorf("waiting for %s: the watch stopped", name)
	}
}

func (m *Marker) markOf(in map[string]*mark, name string) *mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := in[name]
	if !ok {
		k = &mark{ch: make(chan struct{})}
		in[name] = k
	}
	return k
}

func (m *Marker) at(in map[string]*mark, name string) time.Time {
	k := m.markOf(in, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	return k.at
}

// set records the first time of name in in.
func (m *Marker) set(in map[string]*mark, name string, at time.Time) {
	k := m.markOf(in, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if k.at.IsZero() {
		k.at = at
		close(k.ch)
	}
}

// PodRunningReady is a pod's end for the benches: phase Running, every
// container ready.
func PodRunningReady(o runtime.Object) (string, bool) {
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
