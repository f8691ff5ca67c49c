package volumematch

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"
)

func TestOrderedSetAgainstSortedSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s orderedSet[int]
	ref := map[sizeKey]int{}
	for i := 0; i < 20000; i++ {
		k := sizeKey{size: int64(r.IntN(200)), name: fmt.Sprint(r.IntN(50))}
		if r.IntN(3) == 0 {
			_, had := ref[k]
			if s.Delete(k) != had {
				t.Fatalf("Delete(%v) disagrees with the reference", k)
			}
			delete(ref, k)
		} else {
			s.Set(k, i)
			ref[k] = i
		}
		if s.Len() != len(ref) {
			t.Fatalf("Len %d, want %d", s.Len(), len(ref))
		}
		if i%500 != 0 {
			continue
		}
		from := int64(r.IntN(220))
		var want []sizeKey
		for k := range ref {
			if k.size >= from {
				want = append(want, k)
			}
		}
		slices.SortFunc(want, sizeKey.compare)
		var got []sizeKey
		s.AscendFrom(from, func(k sizeKey, v int) bool {
			if ref[k] != v {
				t.Fatalf("value of %v is %d, want %d", k, v, ref[k])
			}
			got = append(got, k)
			return true
		})
		if !slices.Equal(got, want) {
			t.Fatalf("AscendFrom(%d) = %v, want %v", from, got, want)
		}
	}
}

var allModes = []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce, v1.ReadOnlyMany, v1.ReadWriteMany, v1.ReadWriteOncePod}

func randomModes(r *rand.Rand) []v1.PersistentVolumeAccessMode {
	var m []v1.PersistentVolumeAccessMode
	for _, x := range allModes {
		if r.IntN(2) == 0 {
			m = append(m, x)
		}
	}
	if len(m) == 0 {
		m = append(m, allModes[r.IntN(len(allModes))])
	}
	return m
}

// bruteBest is the rule written out plainly over every volume: among the
// candidates, the bucket (access-mode set) with fewest modes that has a
// fit, then the smallest capacity, then the name.
func bruteBest(vols []*v1.PersistentVolume, claim *v1.PersistentVolumeClaim) *v1.PersistentVolume {
	var best *v1.PersistentVolume
	bestModes := 0
	for _, pv := range vols {
		if storagehelpers.GetPersistentVolumeClass(pv) != storagehelpers.GetPersistentVolumeClaimClass(claim) ||
			storagehelpers.CheckVolumeModeMismatches(&claim.Spec, &pv.Spec) ||
			!storagehelpers.CheckAccessModes(claim, pv) || Capacity(pv) < Request(claim) {
			continue
		}
		if claim.Spec.Selector != nil && pv.Labels["tier"] != claim.Spec.Selector.MatchLabels["tier"] {
			continue
		}
		n := len(accessKeyModes(pv))
		switch {
		case best == nil,
			n < bestModes,
			n == bestModes && accessKey(pv.Spec.AccessModes) < accessKey(best.Spec.AccessModes),
			n == bestModes && accessKey(pv.Spec.AccessModes) == accessKey(best.Spec.AccessModes) &&
				(sizeKey{Capacity(pv), pv.Name}).less(sizeKey{Capacity(best), best.Name}):
			best, bestModes = pv, n
		}
	}
	return best
}

func accessKeyModes(pv *v1.PersistentVolume) []v1.PersistentVolumeAccessMode {
	m := slices.Clone(pv.Spec.AccessModes)
	slices.Sort(m)
	return slices.Compact(m)
}

// TestMatchIndexAgainstBruteForce checks the index's choice against the
// rule applied to every volume, over random volumes and claims, while
// volumes are added and removed.
func TestMatchIndexAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	classes := []string{"", "gold", "silver"}
	x := NewIndex()
	live := map[string]*v1.PersistentVolume{}
	for i := 0; i < 3000; i++ {
		name := fmt.Sprintf("pv-%d", r.IntN(400))
		if _, ok := live[name]; ok && r.IntN(2) == 0 {
			x.Remove(name)
			delete(live, name)
		} else {
			pv := newPV(name, fmt.Sprintf("%dGi", 1+r.IntN(64)), pvClass(classes[r.IntN(len(classes))]), pvModes(randomModes(r)...))
			if r.IntN(4) == 0 {
				pv.Spec.VolumeMode = ptrMode(v1.PersistentVolumeBlock)
			}
			if r.IntN(3) == 0 {
				pv.Labels = map[string]string{"tier": "fast"}
			}
			x.Put(pv)
			live[name] = pv
		}
		if x.Len() != len(live) {
			t.Fatalf("index holds %d volumes, want %d", x.Len(), len(live))
		}
		claim := newPVC("c", fmt.Sprintf("%dGi", 1+r.IntN(70)), pvcClass(classes[r.IntN(len(classes))]), pvcModes(randomModes(r)...))
		if r.IntN(4) == 0 {
			claim.Spec.VolumeMode = ptrMode(v1.PersistentVolumeBlock)
		}
		if r.IntN(5) == 0 {
			pvcSelector("tier", "fast")(claim)
		}
		vols := make([]*v1.PersistentVolume, 0, len(live))
		for _, pv := range live {
			vols = append(vols, pv)
		}
		got, err := x.Best(claim)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteBest(vols, claim)
		if got != want {
			t.Fatalf("claim %s %v %s: index chose %s, the rule %s", requestQ(claim), claim.Spec.AccessModes,
				storagehelpers.GetPersistentVolumeClaimClass(claim), nameOf(got), nameOf(want))
		}
	}
}

func ptrMode(m v1.PersistentVolumeMode) *v1.PersistentVolumeMode { return &m }

func nameOf(pv *v1.PersistentVolume) string {
	if pv == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s(%s %v)", pv.Name, pv.Spec.Capacity.Storage(), pv.Spec.AccessModes)
}

func requestQ(c *v1.PersistentVolumeClaim) string {
	q := c.Spec.Resources.Requests[v1.ResourceStorage]
	return q.String()
}

// BenchmarkMatch measures the cost of choosing a volume for one claim at
// 1k, 10k and 50k volumes of mixed sizes, classes and modes: it should
// stay flat.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			x, claims := matchFixture(n)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := x.Best(claims[i%len(claims)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// matchFixture builds an index of n volumes of mixed sizes, classes and
// access modes, and claims to match against it.
func matchFixture(n int) (*Index, []*v1.PersistentVolumeClaim) {
	r := rand.New(rand.NewPCG(5, 6))
	classes := []string{"", "gold", "silver", "bronze"}
	modeSets := [][]v1.PersistentVolumeAccessMode{{v1.ReadWriteOnce}, {v1.ReadWriteOnce, v1.ReadOnlyMany}, {v1.ReadWriteMany}}
	x := NewIndex()
	for i := 0; i < n; i++ {
		pv := newPV(fmt.Sprintf("pv-%06d", i), "1Gi", pvClass(classes[i%len(classes)]), pvModes(modeSets[i%len(modeSets)]...))
		pv.Spec.Capacity[v1.ResourceStorage] = *resource.NewQuantity(int64(1+r.IntN(1000))<<30, resource.BinarySI)
		x.Put(pv)
	}
	var claims []*v1.PersistentVolumeClaim
	for i := 0; i < 1024; i++ {
		c := newPVC(fmt.Sprintf("c-%d", i), "1Gi", pvcClass(classes[i%len(classes)]), pvcModes(modeSets[i%len(modeSets)][0]))
		c.Spec.Resources.Requests[v1.ResourceStorage] = *resource.NewQuantity(int64(1+r.IntN(1000))<<30, resource.BinarySI)
		claims = append(claims, c)
	}
	return x, claims
}

type pvOpt func(*v1.PersistentVolume)

func newPV(name, size string, opts ...pvOpt) *v1.PersistentVolume {
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{
			Capacity:    v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)},
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			VolumeMode:  ptr.To(v1.PersistentVolumeFilesystem),
		},
		Status: v1.PersistentVolumeStatus{Phase: v1.VolumeAvailable},
	}
	for _, o := range opts {
		o(pv)
	}
	return pv
}

func pvClass(c string) pvOpt { return func(pv *v1.PersistentVolume) { pv.Spec.StorageClassName = c } }
func pvModes(m ...v1.PersistentVolumeAccessMode) pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Spec.AccessModes = m }
}

type pvcOpt func(*v1.PersistentVolumeClaim)

func newPVC(name, size string, opts ...pvcOpt) *v1.PersistentVolumeClaim {
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}},
			VolumeMode:       ptr.To(v1.PersistentVolumeFilesystem),
			StorageClassName: ptr.To(""),
		},
	}
	for _, o := range opts {
		o(pvc)
	}
	return pvc
}

func pvcClass(c string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.StorageClassName = ptr.To(c) }
}
func pvcModes(m ...v1.PersistentVolumeAccessMode) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) { pvc.Spec.AccessModes = m }
}
func pvcSelector(kv ...string) pvcOpt {
	return func(pvc *v1.PersistentVolumeClaim) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		pvc.Spec.Selector = &metav1.LabelSelector{MatchLabels: m}
	}
}

// TestBestFuncAccept: the accept filter narrows the candidates but keeps
// the rule among those left (fewest modes, then smallest fit).
func TestBestFuncAccept(t *testing.T) {
	x := NewIndex()
	for _, pv := range []*v1.PersistentVolume{
		newPV("a-1g", "1Gi"), newPV("b-2g", "2Gi"), newPV("c-4g", "4Gi"),
		newPV("d-1g-rwx", "1Gi", pvModes(v1.ReadWriteOnce, v1.ReadWriteMany)),
	} {
		x.Put(pv)
	}
	c := newPVC("c", "1Gi")
	tests := []struct {
		name   string
		accept func(*v1.PersistentVolume) bool
		want   string
	}{
		{"all", nil, "a-1g(1Gi [ReadWriteOnce])"},
		{"not a", func(pv *v1.PersistentVolume) bool { return pv.Name != "a-1g" }, "b-2g(2Gi [ReadWriteOnce])"},
		{"only the wider bucket", func(pv *v1.PersistentVolume) bool { return pv.Name == "d-1g-rwx" }, "d-1g-rwx(1Gi [ReadWriteOnce ReadWriteMany])"},
		{"none", func(*v1.PersistentVolume) bool { return false }, "<none>"},
	}
	for _, tt := range tests {
		got, err := x.BestFunc(c, tt.accept)
		if err != nil {
			t.Fatal(err)
		}
		if nameOf(got) != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, nameOf(got), tt.want)
		}
	}
}

// TestBetterSplitsLikeOneIndex: volumes spread over several indexes,
// each index's choice combined with Better, give the one index's choice.
func TestBetterSplitsLikeOneIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for round := 0; round < 300; round++ {
		one := NewIndex()
		parts := []*Index{NewIndex(), NewIndex(), NewIndex()}
		for i := 0; i < 30; i++ {
			pv := newPV(fmt.Sprintf("pv-%d", i), fmt.Sprintf("%dGi", 1+r.IntN(8)), pvModes(randomModes(r)...))
			one.Put(pv)
			parts[r.IntN(len(parts))].Put(pv)
		}
		claim := newPVC("c", fmt.Sprintf("%dGi", 1+r.IntN(8)), pvcModes(randomModes(r)...))
		want, _ := one.Best(claim)
		var got *v1.PersistentVolume
		for _, x := range parts {
			pv, _ := x.Best(claim)
			if pv != nil && (got == nil || Better(pv, got)) {
				got = pv
			}
		}
		if got != want {
			t.Fatalf("round %d: split indexes chose %s, one index %s", round, nameOf(got), nameOf(want))
		}
	}
}
