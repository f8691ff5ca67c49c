package objectcache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// kind is one object type the cache can watch.
type kind struct {
	// resource names the type in NotFound errors, as the kubelet's
	// object managers do: configmap "x" not found.
	resource string
	example  runtime.Object
	get      func(ctx context.Context, c kubernetes.Interface, ns, name string) (runtime.Object, error)
	list     func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error)
	watch    func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error)
}

var (
	configMaps = &kind{
		resource: "configmap",
		example:  &corev1.ConfigMap{},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (runtime.Object, error) {
			return c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().ConfigMaps(ns).List(ctx, o)
		},
		watch: func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().ConfigMaps(ns).Watch(ctx, o)
		},
	}
	secrets = &kind{
		resource: "secret",
		example:  &corev1.Secret{},
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (runtime.Object, error) {
			return c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Secrets(ns).List(ctx, o)
		},
		watch: func(ctx context.Context, c kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Secrets(ns).Watch(ctx, o)
		},
	}
)

// absent stands for "no such object" where a resourceVersion is kept.
const absent = "\x00absent"

type key struct {
	kind      *kind
	namespace string
	name      string
}

// Cache holds one watch per referenced object. See the package doc.
type Cache struct {
	client kubernetes.Interface
	log    *slog.Logger

	mu       sync.Mutex
	watches  map[key]*objectWatch
	refs     map[string]map[key]bool // volume name -> objects it reads
	bundles  *trustBundles
	handlers []func(volumeName string)
}

// objectWatch is the watch of one object and the volumes that read it.
type objectWatch struct {
	key      key
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	// volumes maps each volume reading the object to the resourceVersion
	// it was last handed (absent for not found), so a change is reported
	// to exactly the volumes that have not seen it yet.
	volumes map[string]string
}

// New returns a cache reading through client (the node's identity).
func New(client kubernetes.Interface, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	return &Cache{client: client, log: log, watches: map[key]*objectWatch{}, refs: map[string]map[key]bool{}}
}

// OnChange registers fn to be called with a volume's name when an object
// it read changed, appeared or was deleted. fn is called from the watch's
// goroutine and must not block.
func (c *Cache) OnChange(fn func(volumeName string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = append(c.handlers, fn)
}

// ConfigMap returns the configMap ns/name for volumeName and keeps it
// watched until Release(volumeName). A missing object is an error for
// which apierrors.IsNotFound holds, worded as the kubelet's:
// configmap "name" not found.
func (c *Cache) ConfigMap(ctx context.Context, volumeName, ns, name string) (*corev1.ConfigMap, error) {
	obj, err := c.get(ctx, volumeName, key{configMaps, ns, name})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.ConfigMap), nil
}

// Secret is ConfigMap for secrets: secret "name" not found.
func (c *Cache) Secret(ctx context.Context, volumeName, ns, name string) (*corev1.Secret, error) {
	obj, err := c.get(ctx, volumeName, key{secrets, ns, name})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Secret), nil
}

// Release forgets what volumeName read; a watch no volume needs any more
// stops.
func (c *Cache) Release(volumeName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.refs[volumeName] {
		w := c.watches[k]
		if w == nil {
			continue
		}
		delete(w.volumes, volumeName)
		if len(w.volumes) == 0 {
			w.cancel()
			delete(c.watches, k)
			c.log.Debug("stopped watch", "resource", k.kind.resource, "namespace", k.namespace, "name", k.name)
		}
	}
	delete(c.refs, volumeName)
	c.releaseTrustBundles(volumeName)
}

// Watching reports how many objects are watched, for tests and metrics.
func (c *Cache) Watching() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watches)
}

func (c *Cache) get(ctx context.Context, volumeName string, k key) (runtime.Object, error) {
	w := c.reference(volumeName, k)
	// Once the watch has listed, its store is the truth; before that a
	// direct GET answers (and gives the API's own error, a Forbidden
	// while the Node authorizer does not yet know the pod, for one).
	var obj runtime.Object
	if w.informer.HasSynced() {
		item, exists, err := w.informer.GetStore().GetByKey(k.namespace + "/" + k.name)
		if err != nil {
			return nil, err
		}
		if exists {
			obj = item.(runtime.Object)
		}
	} else {
		got, err := k.kind.get(ctx, c.client, k.namespace, k.name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("get %s %s/%s: %w", k.kind.resource, k.namespace, k.name, err)
		default:
			obj = got
		}
	}
	c.mu.Lock()
	if _, ok := w.volumes[volumeName]; ok {
		w.volumes[volumeName] = absent
		if obj != nil {
			w.volumes[volumeName] = resourceVersionOf(obj)
		}
	}
	c.mu.Unlock()
	if obj == nil {
		return nil, apierrors.NewNotFound(corev1.Resource(k.kind.resource), k.name)
	}
	return obj.DeepCopyObject(), nil
}

// reference records that volumeName reads k and starts its watch.
func (c *Cache) reference(volumeName string, k key) *objectWatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs[volumeName] == nil {
		c.refs[volumeName] = map[key]bool{}
	}
	c.refs[volumeName][k] = true
	w := c.watches[k]
	if w == nil {
		w = c.startWatch(k)
		c.watches[k] = w
	}
	if _, ok := w.volumes[volumeName]; !ok {
		w.volumes[volumeName] = ""
	}
	return w
}

// startWatch lists and watches the one object k with a field selector on
// its name: what the Node authorizer lets a node do for objects its pods
// reference. Called with c.mu held.
func (c *Cache) startWatch(k key) *objectWatch {
	sel := fields.OneTermEqualSelector("metadata.name", k.name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return k.kind.list(ctx, c.client, k.namespace, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return k.kind.watch(ctx, c.client, k.namespace, o)
		},
	}
	// The wrapper lets a client that cannot stream a watch-list (the
	// fake clientset) say so to the reflector.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c.client), k.kind.example, 0, cache.Indexers{})
	ctx, cancel := context.WithCancel(context.Background())
	w := &objectWatch{key: k, informer: inf, cancel: cancel, volumes: map[string]string{}}
	changed := func(obj any) {
		if m, err := metaOf(obj); err != nil || m.GetName() != k.name || m.GetNamespace() != k.namespace {
			return
		}
		c.changed(w, resourceVersionOf(obj))
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, obj any) { changed(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if m, err := metaOf(obj); err == nil && m.GetName() == k.name && m.GetNamespace() == k.namespace {
				c.changed(w, absent)
			}
		},
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		c.log.Debug("watch failed, retrying", "resource", k.kind.resource, "namespace", k.namespace, "name", k.name, "err", err)
	})
	go inf.RunWithContext(ctx)
	c.log.Debug("started watch", "resource", k.kind.resource, "namespace", k.namespace, "name", k.name)
	return w
}

// changed tells the volumes reading w's object about version rv, each
// unless it was last handed that version.
func (c *Cache) changed(w *objectWatch, rv string) {
	c.mu.Lock()
	if c.watches[w.key] != w {
		c.mu.Unlock()
		return
	}
	var volumes []string
	for v, served := range w.volumes {
		if served != rv {
			volumes = append(volumes, v)
			w.volumes[v] = rv
		}
	}
	handlers := append([]func(string){}, c.handlers...)
	c.mu.Unlock()
	if len(volumes) == 0 {
		return
	}
	c.log.Debug("object changed", "resource", w.key.kind.resource, "namespace", w.key.namespace, "name", w.key.name, "volumes", len(volumes))
	for _, v := range volumes {
		for _, fn := range handlers {
			fn(v)
		}
	}
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not an API object", obj)
	}
	return m, nil
}

func resourceVersionOf(obj any) string {
	m, err := metaOf(obj)
	if err != nil {
		return ""
	}
	return m.GetResourceVersion()
}
