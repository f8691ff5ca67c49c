package volumebinding

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"
)

func TestHints(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: v1.PodSpec{Volumes: []v1.Volume{
		{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c1"}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}},
	}}}
	other := claim("c1", "1Gi", "local")
	other.Namespace = "elsewhere"
	topo := class("local", "x", "zone", "a")
	capA := capacity("fast", "1Gi", "", hostname, "n1")
	capB := capA.DeepCopy()
	capB.Capacity = ptr.To(resource.MustParse("2Gi"))
	capSmaller := capA.DeepCopy()
	capSmaller.Capacity = ptr.To(resource.MustParse("500Mi"))
	tests := []struct {
		name     string
		fn       fwk.QueueingHintFn
		old, new any
		want     fwk.QueueingHint
	}{
		{"own claim", hintClaim, nil, claim("c1", "1Gi", "local"), fwk.Queue},
		{"own ephemeral claim", hintClaim, nil, claim("p-scratch", "1Gi", "local"), fwk.Queue},
		{"another claim", hintClaim, nil, claim("c2", "1Gi", "local"), fwk.QueueSkip},
		{"same name, other namespace", hintClaim, nil, other, fwk.QueueSkip},
		{"new class", hintStorageClass, nil, class("local", "x"), fwk.Queue},
		{"class topology changed", hintStorageClass, class("local", "x"), topo, fwk.Queue},
		{"class unchanged", hintStorageClass, topo, topo.DeepCopy(), fwk.QueueSkip},
		{"new CSINode", hintCSINode, nil, &storagev1.CSINode{}, fwk.Queue},
		{"CSINode drivers changed", hintCSINode, &storagev1.CSINode{}, &storagev1.CSINode{Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: "d"}}}}, fwk.Queue},
		{"CSINode unchanged", hintCSINode, &storagev1.CSINode{}, &storagev1.CSINode{}, fwk.QueueSkip},
		{"capacity tracking switched", hintCSIDriver, csiDriver("d", false), csiDriver("d", true), fwk.Queue},
		{"driver unchanged", hintCSIDriver, csiDriver("d", true), csiDriver("d", true), fwk.QueueSkip},
		{"new capacity", hintCapacity, nil, capA, fwk.Queue},
		{"capacity grew", hintCapacity, capA, capB, fwk.Queue},
		{"capacity shrank", hintCapacity, capA, capSmaller, fwk.QueueSkip},
		{"wrong type", hintClaim, nil, &v1.Pod{}, fwk.Queue},
	}
	for _, tt := range tests {
		got, _ := tt.fn(klog.Background(), pod, tt.old, tt.new)
		if got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
