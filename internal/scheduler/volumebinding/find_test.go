package volumebinding

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// describe renders a findPodVolumes result for comparison.
func describe(nv *nodeVolumes, reasons []string) string {
	if len(reasons) > 0 {
		return "reasons: " + strings.Join(reasons, "; ")
	}
	var parts []string
	for _, b := range nv.bindings {
		parts = append(parts, b.claim.Name+"->"+b.pv.Name)
	}
	for _, p := range nv.provisions {
		s := p.claim.Name + "->provision"
		if p.capacity != nil {
			s += "@" + p.capacity.Name
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func TestFindPodVolumes(t *testing.T) {
	local := class("local", "kubernetes.io/no-provisioner")
	csi := class("fast", "csi.example.com")
	zoned := class("zoned", "csi.example.com", "zone", "a")
	tracked := class("tracked", "tracked.example.com")
	tests := []struct {
		name    string
		pvs     []*v1.PersistentVolume
		classes []*storagev1.StorageClass
		drivers []*storagev1.CSIDriver
		caps    []*storagev1.CSIStorageCapacity
		bound   []*v1.PersistentVolumeClaim
		delayed []*v1.PersistentVolumeClaim
		node    *v1.Node
		want    string
		wantErr bool
	}{{
		name:  "bound claim, PV on this node",
		pvs:   []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1", claimRef("default", "c1", "uid-c1"), phase(v1.VolumeBound))},
		bound: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local", boundTo("pv1"))},
		node:  node("n1"),
		want:  "",
	}, {
		name:  "bound claim, PV on another node",
		pvs:   []*v1.PersistentVolume{localPV("pv1", "1Gi", "n2", claimRef("default", "c1", "uid-c1"), phase(v1.VolumeBound))},
		bound: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local", boundTo("pv1"))},
		node:  node("n1"),
		want:  "reasons: " + ReasonNodeConflict,
	}, {
		name:  "bound claim whose PV is gone",
		bound: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local", boundTo("pv1"))},
		node:  node("n1"),
		want:  "reasons: " + ReasonPVNotExist,
	}, {
		name:    "delayed claim takes the smallest fitting PV the node reaches",
		pvs:     []*v1.PersistentVolume{localPV("big", "10Gi", "n1"), localPV("small", "2Gi", "n1"), localPV("tiny", "500Mi", "n1"), localPV("other", "1Gi", "n2")},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "c1->small",
	}, {
		name:    "delayed claim, the only PV is on another node, no provisioner",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n2")},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "reasons: " + ReasonBindConflict,
	}, {
		name:    "a PV bound to someone else is not taken",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1", claimRef("default", "x", "uid-x"), phase(v1.VolumeBound))},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "reasons: " + ReasonBindConflict,
	}, {
		name:    "two claims never get one PV",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1"), localPV("pv2", "5Gi", "n1")},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c2", "1Gi", "local"), claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "c2->pv1,c1->pv2",
	}, {
		name:    "two claims, one PV: not enough volumes on the node",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1")},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local")},
		node:    node("n1"),
		want:    "reasons: " + ReasonBindConflict,
	}, {
		name:    "a PV pre-bound to the claim wins over a better fit",
		pvs:     []*v1.PersistentVolume{localPV("exact", "1Gi", "n1"), localPV("pre", "8Gi", "n1", claimRef("default", "c1", ""))},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "c1->pre",
	}, {
		name:    "a bound claim elsewhere and a delayed one: both reasons",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n2", claimRef("default", "c1", "uid-c1"), phase(v1.VolumeBound))},
		classes: []*storagev1.StorageClass{local},
		bound:   []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local", boundTo("pv1"))},
		delayed: []*v1.PersistentVolumeClaim{claim("c2", "1Gi", "local")},
		node:    node("n1"),
		want:    "reasons: " + ReasonNodeConflict + "; " + ReasonBindConflict,
	}, {
		name:    "no PV, provisioner without capacity tracking",
		classes: []*storagev1.StorageClass{csi},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "fast")},
		node:    node("n1"),
		want:    "c1->provision",
	}, {
		name:    "allowedTopologies admit the node",
		classes: []*storagev1.StorageClass{zoned},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "zoned")},
		node:    node("n1", "zone", "a"),
		want:    "c1->provision",
	}, {
		name:    "allowedTopologies exclude the node",
		classes: []*storagev1.StorageClass{zoned},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "zoned")},
		node:    node("n1", "zone", "b"),
		want:    "reasons: " + ReasonBindConflict,
	}, {
		name:    "claim being provisioned for another node",
		classes: []*storagev1.StorageClass{csi},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "fast", selected("n2"))},
		node:    node("n1"),
		want:    "reasons: " + ReasonBindConflict,
	}, {
		name:    "claim being provisioned for this node",
		classes: []*storagev1.StorageClass{csi},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "fast", selected("n1"))},
		node:    node("n1"),
		want:    "c1->provision",
	}, {
		name:    "tracked capacity with room on the node",
		classes: []*storagev1.StorageClass{tracked},
		drivers: []*storagev1.CSIDriver{csiDriver("tracked.example.com", true)},
		caps:    []*storagev1.CSIStorageCapacity{capacity("tracked", "10Gi", "", hostname, "n1")},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "5Gi", "tracked")},
		node:    node("n1"),
		want:    "c1->provision@cap-tracked-10Gi",
	}, {
		name:    "tracked capacity too small",
		classes: []*storagev1.StorageClass{tracked},
		drivers: []*storagev1.CSIDriver{csiDriver("tracked.example.com", true)},
		caps:    []*storagev1.CSIStorageCapacity{capacity("tracked", "1Gi", "", hostname, "n1")},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "5Gi", "tracked")},
		node:    node("n1"),
		want:    "reasons: " + ReasonNotEnoughSpace,
	}, {
		name:    "maximumVolumeSize wins over capacity",
		classes: []*storagev1.StorageClass{tracked},
		drivers: []*storagev1.CSIDriver{csiDriver("tracked.example.com", true)},
		caps:    []*storagev1.CSIStorageCapacity{capacity("tracked", "100Gi", "2Gi", hostname, "n1")},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "5Gi", "tracked")},
		node:    node("n1"),
		want:    "reasons: " + ReasonNotEnoughSpace,
	}, {
		name:    "tracked capacity on another node only",
		classes: []*storagev1.StorageClass{tracked},
		drivers: []*storagev1.CSIDriver{csiDriver("tracked.example.com", true)},
		caps:    []*storagev1.CSIStorageCapacity{capacity("tracked", "10Gi", "", hostname, "n2")},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "5Gi", "tracked")},
		node:    node("n1"),
		want:    "reasons: " + ReasonNotEnoughSpace,
	}, {
		name:    "driver without capacity tracking ignores capacities",
		classes: []*storagev1.StorageClass{tracked},
		drivers: []*storagev1.CSIDriver{csiDriver("tracked.example.com", false)},
		caps:    []*storagev1.CSIStorageCapacity{capacity("tracked", "1Gi", "", hostname, "n2")},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "5Gi", "tracked")},
		node:    node("n1"),
		want:    "c1->provision",
	}, {
		name:    "one claim matched, the other provisioned",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1", func(pv *v1.PersistentVolume) { pv.Spec.StorageClassName = "fast" })},
		classes: []*storagev1.StorageClass{csi},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "fast"), claim("c2", "1Gi", "fast")},
		node:    node("n1"),
		want:    "c1->pv1,c2->provision",
	}, {
		name: "a volume reachable from every node beats a larger local one",
		pvs: []*v1.PersistentVolume{localPV("local-big", "4Gi", "n1"),
			localPV("anywhere", "2Gi", "n1", func(pv *v1.PersistentVolume) { pv.Spec.NodeAffinity = nil })},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1"),
		want:    "c1->anywhere",
	}, {
		name: "a zone-pinned volume in another zone is passed over for the local one",
		pvs: []*v1.PersistentVolume{localPV("local-big", "4Gi", "n1"),
			localPV("zoned", "1Gi", "n1", func(pv *v1.PersistentVolume) {
				pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0] = v1.NodeSelectorRequirement{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"b"}}
			})},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1", "zone", "a"),
		want:    "c1->local-big",
	}, {
		name:    "a volume pinned by hostname goes by the label, not the node's name",
		pvs:     []*v1.PersistentVolume{localPV("pv1", "1Gi", "host-1")},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n1", hostname, "host-1"),
		want:    "c1->pv1",
	}, {
		name: "a volume pinned to two hosts is checked by its affinity",
		pvs: []*v1.PersistentVolume{localPV("pv1", "1Gi", "n1", func(pv *v1.PersistentVolume) {
			pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values = []string{"n2", "n3"}
		})},
		classes: []*storagev1.StorageClass{local},
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "local")},
		node:    node("n3"),
		want:    "c1->pv1",
	}, {
		name:    "class of a provisioned claim missing is an error",
		delayed: []*v1.PersistentVolumeClaim{claim("c1", "1Gi", "gone")},
		node:    node("n1"),
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorld(tt.pvs, tt.classes, tt.drivers, tt.caps)
			sel := func(c *v1.PersistentVolumeClaim) string { return c.Annotations["volume.kubernetes.io/selected-node"] }
			nv, reasons, err := findPodVolumes(w, &podClaims{bound: tt.bound, delayed: tt.delayed}, tt.node, sel)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := describe(nv, reasons); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestMatchTopology(t *testing.T) {
	term := func(key string, values ...string) v1.TopologySelectorTerm {
		return v1.TopologySelectorTerm{MatchLabelExpressions: []v1.TopologySelectorLabelRequirement{{Key: key, Values: values}}}
	}
	tests := []struct {
		terms  []v1.TopologySelectorTerm
		labels map[string]string
		want   bool
	}{
		{nil, map[string]string{}, true},
		{[]v1.TopologySelectorTerm{term("zone", "a", "b")}, map[string]string{"zone": "b"}, true},
		{[]v1.TopologySelectorTerm{term("zone", "a")}, map[string]string{"zone": "b"}, false},
		{[]v1.TopologySelectorTerm{term("zone", "a")}, map[string]string{}, false},
		{[]v1.TopologySelectorTerm{term("zone", "a"), term("region", "r")}, map[string]string{"region": "r"}, true},
		{[]v1.TopologySelectorTerm{{MatchLabelExpressions: []v1.TopologySelectorLabelRequirement{{Key: "zone", Values: []string{"a"}}, {Key: "rack", Values: []string{"1"}}}}},
			map[string]string{"zone": "a", "rack": "2"}, false},
	}
	for i, tt := range tests {
		if got := matchTopology(tt.terms, tt.labels); got != tt.want {
			t.Errorf("%d: matchTopology(%v, %v) = %v, want %v", i, tt.terms, tt.labels, got, tt.want)
		}
	}
}

func TestCapacityReaches(t *testing.T) {
	n := node("n1", "zone", "a")
	tests := []struct {
		sel  *metav1.LabelSelector
		want bool
	}{
		{nil, false},
		{&metav1.LabelSelector{}, true},
		{&metav1.LabelSelector{MatchLabels: map[string]string{"zone": "a"}}, true},
		{&metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}}, false},
	}
	for i, tt := range tests {
		c := &storagev1.CSIStorageCapacity{NodeTopology: tt.sel}
		if got := capacityReaches(c, n); got != tt.want {
			t.Errorf("%d: %v", i, got)
		}
	}
}

func TestVolumeUse(t *testing.T) {
	pv1 := localPV("pv1", "4Gi", "n1")
	pv2 := localPV("pv2", "4Gi", "n1")
	c1, c2 := claim("c1", "1Gi", "local"), claim("c2", "1Gi", "local")
	cp := capacity("fast", "10Gi", "", hostname, "n1")
	p1, p2 := claim("p1", "1Gi", "fast"), claim("p2", "2Gi", "fast")
	tests := []struct {
		nv   *nodeVolumes
		want string
	}{
		{&nodeVolumes{bindings: []binding{{pv1, c1}, {pv2, c2}}}, "local:2147483648/8589934592"},
		{&nodeVolumes{provisions: []provision{{p1, cp}, {p2, cp}}}, "fast:3221225472/10737418240"},
		{&nodeVolumes{provisions: []provision{{p1, nil}}}, ""},
	}
	for i, tt := range tests {
		var got []string
		for k, u := range volumeUse(tt.nv) {
			got = append(got, fmt.Sprintf("%s:%d/%d", k, u.requested, u.capacity))
		}
		slices.Sort(got)
		if s := strings.Join(got, ","); s != tt.want {
			t.Errorf("%d: got %q, want %q", i, s, tt.want)
		}
	}
}
