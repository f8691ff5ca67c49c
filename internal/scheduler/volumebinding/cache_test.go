package volumebinding

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"
)

func bestName(t *testing.T, c *volumeCache, cl *v1.PersistentVolumeClaim) string {
	t.Helper()
	pv, err := c.best(cl, node("n1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pv == nil {
		return ""
	}
	return pv.Name
}

// TestVolumeCacheAssume: a volume assumed for one claim is no longer
// offered to another; restoring gives it back; the informer's newer
// version ends the assumption; an assumption on a stale version fails.
func TestVolumeCacheAssume(t *testing.T) {
	c := newVolumeCache()
	c.update(localPV("pv1", "1Gi", "n1"))
	c1, c2 := claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local")
	if got := bestName(t, c, c2); got != "pv1" {
		t.Fatalf("before assuming: best %q", got)
	}
	bound, dirty, err := storagehelpers.GetBindVolumeToClaim(c.get("pv1"), c1)
	if err != nil || !dirty {
		t.Fatalf("bind: %v %v", dirty, err)
	}
	if err := c.assume(bound); err != nil {
		t.Fatal(err)
	}
	if got := bestName(t, c, c2); got != "" {
		t.Fatalf("assumed volume offered to another claim: %q", got)
	}
	if err := c.assume(bound); err == nil {
		t.Fatal("a volume was assumed twice")
	}
	if got := c.get("pv1").Spec.ClaimRef; got == nil || got.Name != "c1" {
		t.Fatalf("view claimRef %v", got)
	}
	if c.apiObject("pv1").Spec.ClaimRef != nil {
		t.Fatal("the informer's version changed")
	}
	c.restore("pv1")
	if got := bestName(t, c, c2); got != "pv1" {
		t.Fatalf("after restore: best %q", got)
	}

	// The write reaches the informer: assumption ends, the volume stays taken.
	if err := c.assume(bound); err != nil {
		t.Fatal(err)
	}
	written := bound.DeepCopy()
	written.ResourceVersion = "2"
	c.update(written)
	if _, ok := c.assumed["pv1"]; ok {
		t.Fatal("assumption outlived a newer informer version")
	}
	if got := bestName(t, c, c2); got != "" {
		t.Fatalf("bound volume offered: %q", got)
	}

	// A choice made on version 1 cannot be assumed over version 2.
	c.update(localPV("pv2", "1Gi", "n1"))
	stale := localPV("pv2", "1Gi", "n1")
	fresh := stale.DeepCopy()
	fresh.ResourceVersion = "5"
	c.update(fresh)
	b2, _, _ := storagehelpers.GetBindVolumeToClaim(stale, c2)
	if err := c.assume(b2); err == nil {
		t.Fatal("assumed over a newer version")
	}
	c.remove("pv2")
	if c.get("pv2") != nil || bestName(t, c, c2) != "" {
		t.Fatal("removed volume still there")
	}
}

// TestVolumeCachePrebound: a volume whose claimRef names a claim is
// offered to that claim only (matching UID or none), never by matching.
func TestVolumeCachePrebound(t *testing.T) {
	c := newVolumeCache()
	c.update(localPV("pre", "1Gi", "n1", claimRef("default", "c1", "")))
	c.update(localPV("other", "1Gi", "n1", claimRef("default", "c1", "uid-not-c1")))
	c1 := claim("c1", "1Gi", "local")
	var names []string
	for _, pv := range c.preboundTo(c1) {
		names = append(names, pv.Name)
	}
	if len(names) != 1 || names[0] != "pre" {
		t.Fatalf("pre-bound to c1: %v", names)
	}
	if got := bestName(t, c, claim("c2", "1Gi", "local")); got != "" {
		t.Fatalf("pre-bound volume matched to another claim: %q", got)
	}
	c.update(localPV("pre", "1Gi", "n1"))
	if len(c.preboundTo(c1)) != 0 {
		t.Fatal("claimRef cleared, still pre-bound")
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{{"2", "1", true}, {"1", "2", false}, {"10", "9", true}, {"1", "1", false}, {"x", "1", true}, {"x", "x", false}}
	for _, tt := range tests {
		if got := newer(tt.a, tt.b); got != tt.want {
			t.Errorf("newer(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestPinnedHost(t *testing.T) {
	pinned := localPV("a", "1Gi", "n1")
	twoValues := localPV("b", "1Gi", "n1")
	twoValues.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values = []string{"n1", "n2"}
	notIn := localPV("c", "1Gi", "n1")
	notIn.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Operator = v1.NodeSelectorOpNotIn
	twoTerms := localPV("d", "1Gi", "n1")
	twoTerms.Spec.NodeAffinity.Required.NodeSelectorTerms = append(twoTerms.Spec.NodeAffinity.Required.NodeSelectorTerms, v1.NodeSelectorTerm{})
	extra := localPV("e", "1Gi", "n1")
	extra.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions = append(extra.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions,
		v1.NodeSelectorRequirement{Key: "zone", Operator: v1.NodeSelectorOpExists})
	none := localPV("f", "1Gi", "n1")
	none.Spec.NodeAffinity = nil
	tests := []struct {
		pv   *v1.PersistentVolume
		host string
		ok   bool
	}{{pinned, "n1", true}, {twoValues, "", false}, {notIn, "", false}, {twoTerms, "", false}, {extra, "", false}, {none, "", false}}
	for _, tt := range tests {
		if host, ok := pinnedHost(tt.pv); host != tt.host || ok != tt.ok {
			t.Errorf("%s: pinnedHost = %q, %v", tt.pv.Name, host, ok)
		}
	}
}
