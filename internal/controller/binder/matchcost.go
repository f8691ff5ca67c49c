package binder

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/volumematch"
)

// MatchCost measures what choosing a volume costs the matcher, per claim,
// with the given number of available volumes of mixed sizes (1..1000Gi),
// four classes and three access-mode sets in the index. It is for
// `volplane bench binder`: the cost should not grow with the volumes.
func MatchCost(volumes, claims int) time.Duration {
	r := rand.New(rand.NewPCG(uint64(volumes), 1))
	classes := []string{"", "gold", "silver", "bronze"}
	modeSets := [][]v1.PersistentVolumeAccessMode{
		{v1.ReadWriteOnce}, {v1.ReadWriteOnce, v1.ReadOnlyMany}, {v1.ReadWriteMany},
	}
	fs := v1.PersistentVolumeFilesystem
	x := volumematch.NewIndex()
	for i := range volumes {
		x.Put(&v1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pv-%07d", i)},
			Spec: v1.PersistentVolumeSpec{
				Capacity:         v1.ResourceList{v1.ResourceStorage: *resource.NewQuantity(int64(1+r.IntN(1000))<<30, resource.BinarySI)},
				AccessModes:      modeSets[i%len(modeSets)],
				StorageClassName: classes[i%len(classes)],
				VolumeMode:       &fs,
			},
		})
	}
	cs := make([]*v1.PersistentVolumeClaim, claims)
	for i := range cs {
		class := classes[i%len(classes)]
		cs[i] = &v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c-%d", i), Namespace: "bench"},
			Spec: v1.PersistentVolumeClaimSpec{
				AccessModes:      modeSets[i%len(modeSets)][:1],
				StorageClassName: &class,
				VolumeMode:       &fs,
				Resources: v1.VolumeResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceStorage: *resource.NewQuantity(int64(1+r.IntN(1000))<<30, resource.BinarySI)}},
			},
		}
	}
	// Building the index leaves garbage; collect it first, and take the
	// best of three passes so that a pause elsewhere does not count.
	runtime.GC()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		for _, c := range cs {
			if _, err := x.Best(c); err != nil {
				panic(err)
			}
		}
		best = min(best, time.Since(start)/time.Duration(claims))
	}
	return best
}
