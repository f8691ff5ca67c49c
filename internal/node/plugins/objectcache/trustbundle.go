package objectcache

import (
	"context"
	"encoding/pem"
	"fmt"
	"sort"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// trustBundles is the one cluster-wide watch of ClusterTrustBundles
// (cluster-scoped; the Node authorizer lets a node read them all).
type trustBundles struct {
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	volumes  map[string]bool
}

// TrustAnchors returns the certificates a clusterTrustBundle projection
// shows, for volumeName, and keeps ClusterTrustBundles watched until
// Release(volumeName): by name, that bundle's certificates; by signer
// name and label selector, the certificates of every matching bundle,
// deduplicated. A missing bundle (or no match) is an empty file when the
// projection is optional, else an error in upstream's words.
func (c *Cache) TrustAnchors(ctx context.Context, volumeName string, p *corev1.ClusterTrustBundleProjection) ([]byte, error) {
	optional := p.Optional != nil && *p.Optional
	if p.Name == nil && p.SignerName == nil {
		return nil, fmt.Errorf("ClusterTrustBundle projection requires either name or signerName to be set")
	}
	tb, err := c.trustBundleWatch(ctx, volumeName)
	if err != nil {
		return nil, err
	}
	store := tb.informer.GetStore()
	var bundles []*certificatesv1.ClusterTrustBundle
	if p.Name != nil {
		item, exists, err := store.GetByKey(*p.Name)
		if err != nil {
			return nil, fmt.Errorf("while getting ClusterTrustBundle: %w", err)
		}
		if !exists {
			if optional {
				return []byte{}, nil
			}
			return nil, fmt.Errorf("while getting ClusterTrustBundle: clustertrustbundle.certificates.k8s.io %q not found", *p.Name)
		}
		bundles = append(bundles, item.(*certificatesv1.ClusterTrustBundle))
	} else {
		// nil selects nothing, empty selects everything, as upstream.
		sel, err := metav1.LabelSelectorAsSelector(p.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("while parsing label selector: %w", err)
		}
		for _, item := range store.List() {
			b := item.(*certificatesv1.ClusterTrustBundle)
			if b.Spec.SignerName == *p.SignerName && sel.Matches(labels.Set(b.Labels)) {
				bundles = append(bundles, b)
			}
		}
		if len(bundles) == 0 {
			if optional {
				return []byte{}, nil
			}
			return nil, fmt.Errorf("combination of signerName and labelSelector matched zero ClusterTrustBundles")
		}
	}
	return normalizeAnchors(bundles), nil
}

// normalizeAnchors returns the distinct certificates of bundles as PEM,
// in a stable order (upstream shuffles them once per kubelet start).
func normalizeAnchors(bundles []*certificatesv1.ClusterTrustBundle) []byte {
	set := map[string]bool{}
	for _, b := range bundles {
		rest := []byte(b.Spec.TrustBundle)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			set[string(block.Bytes)] = true
		}
	}
	ders := make([]string, 0, len(set))
	for d := range set {
		ders = append(ders, d)
	}
	sort.Strings(ders)
	out := []byte{}
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(d)})...)
	}
	return out
}

// trustBundleWatch registers volumeName and returns the synced watch,
// starting it if needed.
func (c *Cache) trustBundleWatch(ctx context.Context, volumeName string) (*trustBundles, error) {
	c.mu.Lock()
	tb := c.bundles
	if tb == nil {
		tb = c.startTrustBundles()
		c.bundles = tb
	}
	tb.volumes[volumeName] = true
	c.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), tb.informer.HasSynced) {
		return nil, fmt.Errorf("ClusterTrustBundle informer has not yet synced")
	}
	return tb, nil
}

// startTrustBundles starts the watch. Called with c.mu held.
func (c *Cache) startTrustBundles() *trustBundles {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.client.CertificatesV1().ClusterTrustBundles().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.client.CertificatesV1().ClusterTrustBundles().Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c.client), &certificatesv1.ClusterTrustBundle{}, 0, cache.Indexers{})
	ctx, cancel := context.WithCancel(context.Background())
	tb := &trustBundles{informer: inf, cancel: cancel, volumes: map[string]bool{}}
	notify := func() {
		c.mu.Lock()
		if c.bundles != tb {
			c.mu.Unlock()
			return
		}
		volumes := make([]string, 0, len(tb.volumes))
		for v := range tb.volumes {
			volumes = append(volumes, v)
		}
		handlers := append([]func(string){}, c.handlers...)
		c.mu.Unlock()
		for _, v := range volumes {
			for _, fn := range handlers {
				fn(v)
			}
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(_ any, initial bool) {
			if !initial {
				notify()
			}
		},
		UpdateFunc: func(_, _ any) { notify() },
		DeleteFunc: func(_ any) { notify() },
	})
	go inf.RunWithContext(ctx)
	return tb
}

// releaseTrustBundles drops volumeName's interest. Called with c.mu held.
func (c *Cache) releaseTrustBundles(volumeName string) {
	if c.bundles == nil {
		return
	}
	delete(c.bundles.volumes, volumeName)
	if len(c.bundles.volumes) == 0 {
		c.bundles.cancel()
		c.bundles = nil
	}
}
