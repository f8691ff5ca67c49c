package volumezone

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"
)

func pv(name string, kv ...string) *v1.PersistentVolume {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func labels(kv ...string) map[string]string {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

const (
	zone       = v1.LabelTopologyZone
	region     = v1.LabelTopologyRegion
	betaZone   = v1.LabelFailureDomainBetaZone
	betaRegion = v1.LabelFailureDomainBetaRegion
)

func TestFits(t *testing.T) {
	tests := []struct {
		name string
		pvs  []*v1.PersistentVolume
		node map[string]string
		want bool
	}{
		{"no labels anywhere", []*v1.PersistentVolume{pv("a")}, labels(), true},
		{"same zone", []*v1.PersistentVolume{pv("a", zone, "z1")}, labels(zone, "z1"), true},
		{"other zone", []*v1.PersistentVolume{pv("a", zone, "z1")}, labels(zone, "z2"), false},
		{"node without zone labels fits all", []*v1.PersistentVolume{pv("a", zone, "z1")}, labels("other", "x"), true},
		{"node with region only, volume with zone", []*v1.PersistentVolume{pv("a", zone, "z1")}, labels(region, "r1"), false},
		{"multi-zone volume", []*v1.PersistentVolume{pv("a", zone, "z1__z2")}, labels(zone, "z2"), true},
		{"zone and region both must match", []*v1.PersistentVolume{pv("a", zone, "z1", region, "r1")}, labels(zone, "z1", region, "r2"), false},
		{"zone and region match", []*v1.PersistentVolume{pv("a", zone, "z1", region, "r1")}, labels(zone, "z1", region, "r1"), true},
		{"beta volume label, GA node label", []*v1.PersistentVolume{pv("a", betaZone, "z1")}, labels(zone, "z1"), true},
		{"beta region label, GA node label, mismatch", []*v1.PersistentVolume{pv("a", betaRegion, "r1")}, labels(region, "r2"), false},
		{"two volumes, one elsewhere", []*v1.PersistentVolume{pv("a", zone, "z1"), pv("b", zone, "z2")}, labels(zone, "z1"), false},
		{"unparsable value ignored", []*v1.PersistentVolume{pv("a", zone, "z1__")}, labels(zone, "z9"), true},
	}
	for _, tt := range tests {
		var tops []topology
		for _, v := range tt.pvs {
			tops = append(tops, volumeTopologies(v)...)
		}
		if got := fits(tops, tt.node); got != tt.want {
			t.Errorf("%s: fits = %v, want %v (topologies %+v)", tt.name, got, tt.want, tops)
		}
	}
}

func TestZones(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"a", []string{"a"}, true},
		{"b__a__b", []string{"a", "b"}, true},
		{"a__", nil, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		got, ok := zones(tt.in)
		if ok != tt.ok || len(got) != len(tt.want) {
			t.Errorf("zones(%q) = %v, %v", tt.in, got, ok)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("zones(%q) = %v", tt.in, got)
			}
		}
	}
}

func TestHints(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: v1.PodSpec{Volumes: []v1.Volume{
		{Name: "d", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
	}}}
	claim := func(ns, name string) *v1.PersistentVolumeClaim {
		return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	wffc := &storagev1.StorageClass{VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	immediate := &storagev1.StorageClass{VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate)}
	tests := []struct {
		name     string
		fn       fwk.QueueingHintFn
		old, new any
		want     fwk.QueueingHint
	}{
		{"own claim", hintClaim, nil, claim("ns", "c"), fwk.Queue},
		{"other claim", hintClaim, nil, claim("ns", "x"), fwk.QueueSkip},
		{"other namespace", hintClaim, nil, claim("other", "c"), fwk.QueueSkip},
		{"WaitForFirstConsumer class", hintClass, nil, wffc, fwk.Queue},
		{"Immediate class", hintClass, nil, immediate, fwk.QueueSkip},
		{"new volume", hintVolume, nil, pv("a"), fwk.Queue},
		{"zone label changed", hintVolume, pv("a", zone, "z1"), pv("a", zone, "z2"), fwk.Queue},
		{"other label changed", hintVolume, pv("a", zone, "z1"), pv("a", zone, "z1", "x", "y"), fwk.QueueSkip},
	}
	for _, tt := range tests {
		if got, _ := tt.fn(klog.Background(), pod, tt.old, tt.new); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
