package volumebinding

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// BenchmarkFindPodVolumes is Filter's work for one delayed-binding
// claim on each of 100 nodes holding 10 local volumes each (the shape of
// upstream's scheduler_perf volume tests): it should not grow with the
// volumes of other nodes.
func BenchmarkFindPodVolumes(b *testing.B) {
	var pvs []*v1.PersistentVolume
	var nodes []*v1.Node
	for n := range 100 {
		name := fmt.Sprintf("node-%03d", n)
		nodes = append(nodes, node(name))
		for i := range 10 {
			pvs = append(pvs, localPV(fmt.Sprintf("pv-%03d-%d", n, i), "10Gi", name))
		}
	}
	w := newFakeWorld(pvs, []*storagev1.StorageClass{class("local", notSupportedProvisioner)}, nil, nil)
	claims := &podClaims{delayed: []*v1.PersistentVolumeClaim{claim("c", "1Gi", "local")}}
	sel := func(*v1.PersistentVolumeClaim) string { return "" }
	b.ResetTimer()
	for b.Loop() {
		for _, n := range nodes {
			if _, reasons, err := findPodVolumes(w, claims, n, sel); err != nil || len(reasons) > 0 {
				b.Fatal(err, reasons)
			}
		}
	}
}
