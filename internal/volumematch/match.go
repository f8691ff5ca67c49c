package volumematch

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"
)

// The match index holds the volumes a claim may be matched to: no
// claimRef, not being deleted, phase Pending or Available, not reserved by
// a bind in flight. It is organised so that finding the best volume for a
// claim costs O(groups * log n), not O(n):
//
//	group  (storage class, volume attributes class, volume mode)
//	  bucket (exact set of access modes), fewest modes first
//	    ordered set of (capacity, name)
//
// A claim's candidates are the buckets of its group whose modes include
// every mode it asks; as upstream does, the bucket with the fewest modes
// that has a fitting volume wins, and within it the smallest volume that
// is large enough (ties by name).

// Group names the volumes a claim can ever match regardless of size
// and access modes.
type Group struct {
	Class string
	VAC   string
	Mode  v1.PersistentVolumeMode
}

func (g Group) String() string {
	return fmt.Sprintf("class=%q vac=%q mode=%s", g.Class, g.VAC, g.Mode)
}

// VolumeGroup is the group of a volume.
func VolumeGroup(pv *v1.PersistentVolume) Group {
	return Group{
		Class: storagehelpers.GetPersistentVolumeClass(pv),
		VAC:   ptr.Deref(pv.Spec.VolumeAttributesClassName, ""),
		Mode:  ptr.Deref(pv.Spec.VolumeMode, v1.PersistentVolumeFilesystem),
	}
}

// ClaimGroup is the group of the volumes a claim may match.
func ClaimGroup(claim *v1.PersistentVolumeClaim) Group {
	return Group{
		Class: storagehelpers.GetPersistentVolumeClaimClass(claim),
		VAC:   ptr.Deref(claim.Spec.VolumeAttributesClassName, ""),
		Mode:  ptr.Deref(claim.Spec.VolumeMode, v1.PersistentVolumeFilesystem),
	}
}

// accessKey is the canonical form of a set of access modes: sorted,
// deduplicated, comma separated.
func accessKey(modes []v1.PersistentVolumeAccessMode) string {
	s := make([]string, 0, len(modes))
	for _, m := range modes {
		s = append(s, string(m))
	}
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// Capacity is a volume's storage capacity in bytes.
func Capacity(pv *v1.PersistentVolume) int64 {
	q := pv.Spec.Capacity[v1.ResourceStorage]
	return q.Value()
}

// Request is a claim's storage request in bytes.
func Request(claim *v1.PersistentVolumeClaim) int64 {
	q := claim.Spec.Resources.Requests[v1.ResourceStorage]
	return q.Value()
}

type bucket struct {
	key   string
	modes []v1.PersistentVolumeAccessMode
	vols  orderedSet[*v1.PersistentVolume]
}

func (b *bucket) offers(want []v1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		if !slices.Contains(b.modes, m) {
			return false
		}
	}
	return true
}

type group struct {
	// buckets sorted by number of modes, then by key.
	buckets []*bucket
}

// Index is the match index. It is not safe for concurrent use; its
// owner guards it.
type Index struct {
	groups map[Group]*group
	// where records the position of each indexed volume so that it can be
	// removed after its object changed.
	where map[string]indexPos
}

type indexPos struct {
	group  Group
	bucket string
	key    sizeKey
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{groups: map[Group]*group{}, where: map[string]indexPos{}}
}

// Len is the number of indexed volumes.
func (x *Index) Len() int { return len(x.where) }

// Has reports whether the volume is indexed.
func (x *Index) Has(name string) bool {
	_, ok := x.where[name]
	return ok
}

// Put indexes pv, replacing an earlier version.
func (x *Index) Put(pv *v1.PersistentVolume) {
	x.Remove(pv.Name)
	gk := VolumeGroup(pv)
	g := x.groups[gk]
	if g == nil {
		g = &group{}
		x.groups[gk] = g
	}
	ak := accessKey(pv.Spec.AccessModes)
	i := slices.IndexFunc(g.buckets, func(b *bucket) bool { return b.key == ak })
	if i < 0 {
		b := &bucket{key: ak}
		for _, m := range strings.Split(ak, ",") {
			if m != "" {
				b.modes = append(b.modes, v1.PersistentVolumeAccessMode(m))
			}
		}
		g.buckets = append(g.buckets, b)
		slices.SortFunc(g.buckets, func(a, b *bucket) int {
			if d := len(a.modes) - len(b.modes); d != 0 {
				return d
			}
			return strings.Compare(a.key, b.key)
		})
		i = slices.Index(g.buckets, b)
	}
	k := sizeKey{size: Capacity(pv), name: pv.Name}
	g.buckets[i].vols.Set(k, pv)
	x.where[pv.Name] = indexPos{group: gk, bucket: ak, key: k}
}

// Remove takes the named volume out of the index, if it is there.
func (x *Index) Remove(name string) {
	pos, ok := x.where[name]
	if !ok {
		return
	}
	delete(x.where, name)
	g := x.groups[pos.group]
	for i, b := range g.buckets {
		if b.key != pos.bucket {
			continue
		}
		b.vols.Delete(pos.key)
		if b.vols.Len() == 0 {
			g.buckets = slices.Delete(g.buckets, i, i+1)
		}
		break
	}
	if len(g.buckets) == 0 {
		delete(x.groups, pos.group)
	}
}

// Best returns the best indexed volume for claim, or nil. It checks
// everything upstream's matching checks except pre-binding (the caller
// looks for volumes pre-bound to the claim first) and delayed binding (the
// caller does not ask for delayed-binding claims).
func (x *Index) Best(claim *v1.PersistentVolumeClaim) (*v1.PersistentVolume, error) {
	return x.BestFunc(claim, nil)
}

// BestFunc is Best among the volumes accept admits (all when accept is
// nil): the scheduler passes the node's affinity and its assumptions.
func (x *Index) BestFunc(claim *v1.PersistentVolumeClaim, accept func(*v1.PersistentVolume) bool) (*v1.PersistentVolume, error) {
	g := x.groups[ClaimGroup(claim)]
	if g == nil {
		return nil, nil
	}
	var selector labels.Selector
	if claim.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("claim %s: label selector: %w", claim.Namespace+"/"+claim.Name, err)
		}
		selector = s
	}
	request := Request(claim)
	for _, b := range g.buckets {
		if !b.offers(claim.Spec.AccessModes) {
			continue
		}
		var found *v1.PersistentVolume
		b.vols.AscendFrom(request, func(_ sizeKey, pv *v1.PersistentVolume) bool {
			if selector != nil && !selector.Matches(labels.Set(pv.Labels)) {
				return true
			}
			if accept != nil && !accept(pv) {
				return true
			}
			found = pv
			return false
		})
		if found != nil {
			return found, nil
		}
	}
	return nil, nil
}

// CheckVolumeSatisfyClaim says why volume cannot serve claim, or nil. It
// is the check for a claim that names its volume: class, size, mode,
// access modes, attributes class, not being deleted. Its messages are
// upstream's.
func CheckVolumeSatisfyClaim(volume *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) error {
	if volume.DeletionTimestamp != nil {
		return fmt.Errorf("the volume is marked for deletion %q", volume.Name)
	}
	if Capacity(volume) < Request(claim) {
		return fmt.Errorf("requested PV is too small")
	}
	if storagehelpers.GetPersistentVolumeClass(volume) != storagehelpers.GetPersistentVolumeClaimClass(claim) {
		return fmt.Errorf("storageClassName does not match")
	}
	if ptr.Deref(claim.Spec.VolumeAttributesClassName, "") != ptr.Deref(volume.Spec.VolumeAttributesClassName, "") {
		return fmt.Errorf("volumeAttributesClassName does not match")
	}
	if storagehelpers.CheckVolumeModeMismatches(&claim.Spec, &volume.Spec) {
		return fmt.Errorf("incompatible volumeMode")
	}
	if !storagehelpers.CheckAccessModes(claim, volume) {
		return fmt.Errorf("incompatible accessMode")
	}
	return nil
}

// PreboundFits reports whether a volume pre-bound to claim may be bound
// to it: upstream checks size, volume mode, attributes class and deletion
// for pre-bound volumes, but not class or access modes (the creator of
// the pre-binding asked for this pair).
func PreboundFits(volume *v1.PersistentVolume, claim *v1.PersistentVolumeClaim) bool {
	return volume.DeletionTimestamp == nil &&
		Capacity(volume) >= Request(claim) &&
		!storagehelpers.CheckVolumeModeMismatches(&claim.Spec, &volume.Spec) &&
		ptr.Deref(claim.Spec.VolumeAttributesClassName, "") == ptr.Deref(volume.Spec.VolumeAttributesClassName, "")
}

// Better reports whether a comes before b in the order in which the
// index chooses (for a claim both fit): the access-mode set with fewer
// modes, then the set's canonical key, then the smaller capacity, then
// the name. Callers that keep volumes in several indexes use it to pick
// among the indexes' choices exactly as one index would.
func Better(a, b *v1.PersistentVolume) bool {
	ka, kb := accessKey(a.Spec.AccessModes), accessKey(b.Spec.AccessModes)
	na, nb := modeCount(ka), modeCount(kb)
	switch {
	case na != nb:
		return na < nb
	case ka != kb:
		return ka < kb
	}
	return sizeKey{Capacity(a), a.Name}.less(sizeKey{Capacity(b), b.Name})
}

func modeCount(key string) int {
	if key == "" {
		return 0
	}
	return strings.Count(key, ",") + 1
}
