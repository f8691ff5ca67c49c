package volumebinding

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/volumematch"
)

// volumeCache is the scheduler's view of the PersistentVolumes: the
// informer's newest version of each, with the plugin's assumptions laid
// over them (Reserve assumes a chosen volume bound to its claim before
// PreBind writes it, so that no second pod is given it meanwhile), and a
// volumematch index of the volumes still bindable in that view. It is
// safe for concurrent use (Filter runs for many nodes at once).
//
// An assumption lasts until the informer delivers a newer version of
// the volume (the write, or someone else's) or it is restored.
type volumeCache struct {
	mu      sync.RWMutex
	api     map[string]*v1.PersistentVolume
	assumed map[string]*v1.PersistentVolume
	// The bindable volumes, in volumematch indexes: one per hostname for
	// volumes pinned to a single node (local volumes), so that a node's
	// Filter looks at its own volumes only, and one for the rest.
	pinned  map[string]*volumematch.Index
	general *volumematch.Index
	// indexedAt: volume name -> its hostname index ("" = general).
	indexedAt map[string]string
	// prebound: claim "namespace/name" -> names of volumes whose claimRef
	// names it (in the view).
	prebound map[string]map[string]bool
	// gen counts the changes that can make a pod fit that did not: a
	// volume put in a bindable index or pre-bound to a claim.
	gen uint64
}

func newVolumeCache() *volumeCache {
	return &volumeCache{
		api:       map[string]*v1.PersistentVolume{},
		assumed:   map[string]*v1.PersistentVolume{},
		pinned:    map[string]*volumematch.Index{},
		general:   volumematch.NewIndex(),
		indexedAt: map[string]string{},
		prebound:  map[string]map[string]bool{},
	}
}

// bindable reports whether a volume may be given to a claim by matching:
// no claimRef, not being deleted, Pending or Available (the binder's rule).
func bindable(pv *v1.PersistentVolume) bool {
	return pv.Spec.ClaimRef == nil && pv.DeletionTimestamp == nil &&
		(pv.Status.Phase == v1.VolumePending || pv.Status.Phase == v1.VolumeAvailable)
}

func claimRefKey(pv *v1.PersistentVolume) string {
	if pv == nil || pv.Spec.ClaimRef == nil {
		return ""
	}
	return pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name
}

// viewLocked is the volume as the scheduler sees it.
func (c *volumeCache) viewLocked(name string) *v1.PersistentVolume {
	if pv, ok := c.assumed[name]; ok {
		return pv
	}
	return c.api[name]
}

// reindexLocked brings the index and the pre-bound map in line with
// the view of one volume, given its view before the change.
func (c *volumeCache) reindexLocked(name string, before *v1.PersistentVolume) {
	if k := claimRefKey(before); k != "" {
		delete(c.prebound[k], name)
		if len(c.prebound[k]) == 0 {
			delete(c.prebound, k)
		}
	}
	pv := c.viewLocked(name)
	c.unindexLocked(name)
	if pv != nil && bindable(pv) {
		host, ok := pinnedHost(pv)
		x := c.general
		if ok {
			if c.pinned[host] == nil {
				c.pinned[host] = volumematch.NewIndex()
			}
			x = c.pinned[host]
		}
		x.Put(pv)
		c.indexedAt[name] = host
		c.gen++
	}
	if k := claimRefKey(pv); k != "" && pv.DeletionTimestamp == nil {
		if c.prebound[k] == nil {
			c.prebound[k] = map[string]bool{}
		}
		c.prebound[k][name] = true
		c.gen++
	}
}

func (c *volumeCache) unindexLocked(name string) {
	host, ok := c.indexedAt[name]
	if !ok {
		return
	}
	delete(c.indexedAt, name)
	if host == "" {
		c.general.Remove(name)
		return
	}
	c.pinned[host].Remove(name)
	if c.pinned[host].Len() == 0 {
		delete(c.pinned, host)
	}
}

// hostnameLabel is the node label local volumes are pinned by.
const hostnameLabel = v1.LabelHostname

// pinnedHost returns the one node a volume's affinity admits when it
// says no more than "kubernetes.io/hostname In [host]": then a node
// reaches it exactly when its hostname label is host.
func pinnedHost(pv *v1.PersistentVolume) (string, bool) {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 {
		return "", false
	}
	term := na.Required.NodeSelectorTerms[0]
	if len(term.MatchFields) != 0 || len(term.MatchExpressions) != 1 {
		return "", false
	}
	e := term.MatchExpressions[0]
	if e.Key != hostnameLabel || e.Operator != v1.NodeSelectorOpIn || len(e.Values) != 1 || e.Values[0] == "" {
		return "", false
	}
	return e.Values[0], true
}

// newer reports whether resource version a is newer than b. Versions
// are etcd revisions; an unparsable one counts as newer.
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA != nil || errB != nil {
		return a != b
	}
	return x > y
}

// update takes the informer's version of a volume; it ends an
// assumption made on an older version. It reports whether the change
// can make a pod fit (the generation grew).
func (c *volumeCache) update(pv *v1.PersistentVolume) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.gen
	before := c.viewLocked(pv.Name)
	c.api[pv.Name] = pv
	if a, ok := c.assumed[pv.Name]; ok && newer(pv.ResourceVersion, a.ResourceVersion) {
		delete(c.assumed, pv.Name)
	}
	c.reindexLocked(pv.Name, before)
	return c.gen != gen
}

// generation is the number of changes so far that can make a pod fit.
func (c *volumeCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// remove forgets a deleted volume and any assumption about it.
func (c *volumeCache) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.viewLocked(name)
	delete(c.api, name)
	delete(c.assumed, name)
	c.reindexLocked(name, before)
}

// assume lays pv over the informer's version of it. pv must be made from
// the version the cache holds (same resource version), else the choice
// was made on stale data and the pod must be retried.
func (c *volumeCache) assume(pv *v1.PersistentVolume) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.viewLocked(pv.Name)
	if cur == nil {
		return fmt.Errorf("persistentvolume %q is gone", pv.Name)
	}
	if cur.ResourceVersion != pv.ResourceVersion {
		return fmt.Errorf("persistentvolume %q changed while it was chosen (version %s, chosen at %s)", pv.Name, cur.ResourceVersion, pv.ResourceVersion)
	}
	if _, ok := c.assumed[pv.Name]; ok {
		return fmt.Errorf("persistentvolume %q is already assumed for another claim", pv.Name)
	}
	c.assumed[pv.Name] = pv
	c.reindexLocked(pv.Name, cur)
	return nil
}

// restore drops the assumption about a volume, if any.
func (c *volumeCache) restore(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assumed[name]; !ok {
		return
	}
	before := c.viewLocked(name)
	delete(c.assumed, name)
	c.reindexLocked(name, before)
}

// get returns the view of a volume, or nil.
func (c *volumeCache) get(name string) *v1.PersistentVolume {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.viewLocked(name)
}

// apiObject returns the informer's version of a volume, or nil.
func (c *volumeCache) apiObject(name string) *v1.PersistentVolume {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.api[name]
}

// preboundTo returns the volumes pre-bound to a claim and not bound to
// it yet (claimRef without the claim's UID, or with it while the claim
// still waits).
func (c *volumeCache) preboundTo(claim *v1.PersistentVolumeClaim) []*v1.PersistentVolume {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*v1.PersistentVolume
	for name := range c.prebound[claim.Namespace+"/"+claim.Name] {
		pv := c.viewLocked(name)
		if ref := pv.Spec.ClaimRef; ref.UID == "" || ref.UID == claim.UID {
			out = append(out, pv)
		}
	}
	slices.SortFunc(out, func(a, b *v1.PersistentVolume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// best is volumematch's choice for the claim among the bindable volumes
// the node reaches and taken (if set) does not reject: the best of the
// node's own index and of the general one (whose volumes' affinity is
// checked one by one), compared as one index would.
func (c *volumeCache) best(claim *v1.PersistentVolumeClaim, node *v1.Node, taken func(*v1.PersistentVolume) bool) (*v1.PersistentVolume, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	free := func(pv *v1.PersistentVolume) bool { return taken == nil || !taken(pv) }
	var best *v1.PersistentVolume
	if host, ok := node.Labels[hostnameLabel]; ok && c.pinned[host] != nil {
		pv, err := c.pinned[host].BestFunc(claim, free)
		if err != nil {
			return nil, err
		}
		best = pv
	}
	pv, err := c.general.BestFunc(claim, func(pv *v1.PersistentVolume) bool {
		return free(pv) && storagehelpers.CheckNodeAffinity(pv, node.Labels) == nil
	})
	if err != nil {
		return nil, err
	}
	if pv != nil && (best == nil || volumematch.Better(pv, best)) {
		best = pv
	}
	return best, nil
}
