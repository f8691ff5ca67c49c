package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TestInformerAcrossRestart runs a client-go informer (list+watch) against
// `volplane up`: it lists what exists, sees changes, resyncs, and keeps
// working after the server restarts under it.
func TestInformerAcrossRestart(t *testing.T) {
	p := startUp(t)
	cs := p.Client()
	ctx := context.Background()
	const ns = "informer"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mk := func(cs kubernetes.Interface, name, v string) {
		t.Helper()
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": v}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk(cs, "before", "1")

	var (
		mu      sync.Mutex
		seen    = map[string]string{} // name -> data.v
		resyncs int
		deleted = map[string]bool{}
	)
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 2*time.Second, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			cm := obj.(*corev1.ConfigMap)
			mu.Lock()
			seen[cm.Name] = cm.Data["v"]
			mu.Unlock()
		},
		UpdateFunc: func(old, cur any) {
			o, c := old.(*corev1.ConfigMap), cur.(*corev1.ConfigMap)
			mu.Lock()
			if o.ResourceVersion == c.ResourceVersion {
				resyncs++
			}
			seen[c.Name] = c.Data["v"]
			mu.Unlock()
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			mu.Lock()
			deleted[obj.(*corev1.ConfigMap).Name] = true
			mu.Unlock()
		},
	})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	check := func(what string, cond func() bool) {
		t.Helper()
		eventually(t, 2*time.Minute, func() error {
			mu.Lock()
			defer mu.Unlock()
			if !cond() {
				return fmt.Errorf("%s: seen=%v resyncs=%d deleted=%v", what, seen, resyncs, deleted)
			}
			return nil
		})
	}
	check("list", func() bool { return seen["before"] == "1" })
	mk(cs, "watched", "1")
	check("watch add", func() bool { return seen["watched"] == "1" })
	check("resync", func() bool { return resyncs >= 2 })

	p.Restart()
	p.WaitReady()
	cs2 := p.Client()
	mk(cs2, "after-restart", "1")
	cm, err := cs2.CoreV1().ConfigMaps(ns).Get(ctx, "watched", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["v"] = "2"
	if _, err := cs2.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs2.CoreV1().ConfigMaps(ns).Delete(ctx, "before", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	check("reconnect", func() bool {
		return seen["after-restart"] == "1" && seen["watched"] == "2" && deleted["before"]
	})
}
