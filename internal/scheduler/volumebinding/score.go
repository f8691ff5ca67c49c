package volumebinding

import (
	"math"

	fwk "k8s.io/kube-scheduler/framework"
)

// classUse is what a pod's volumes of one storage class would use on a
// node: the bytes its claims request and the bytes they are given (the
// chosen volumes' capacity, or the capacity a CSIStorageCapacity
// reports for provisioning).
type classUse struct {
	requested int64
	capacity  int64
}

// shapeScore maps a utilisation (0..100) through the shape, linear
// between points and flat beyond the ends, scaled to 0..MaxNodeScore.
func shapeScore(shape []ShapePoint, utilization int64) int64 {
	scale := fwk.MaxNodeScore / maxShapeScore
	for i, p := range shape {
		if utilization > int64(p.Utilization) {
			continue
		}
		if i == 0 {
			return int64(p.Score) * scale
		}
		prev := shape[i-1]
		s := int64(prev.Score)*scale + (int64(p.Score)-int64(prev.Score))*scale*(utilization-int64(prev.Utilization))/int64(p.Utilization-prev.Utilization)
		return s
	}
	return int64(shape[len(shape)-1].Score) * scale
}

// score is a node's score for the pod's volumes: each class's
// utilisation through the shape, averaged over the classes (all classes
// weigh the same, as upstream's). A class with nothing to measure, or
// asked for more than it has, counts as full.
func score(shape []ShapePoint, use map[string]classUse) int64 {
	if len(use) == 0 {
		return 0
	}
	var sum int64
	for _, u := range use {
		util := int64(100)
		if u.capacity > 0 && u.requested <= u.capacity {
			util = u.requested * 100 / u.capacity
		}
		sum += shapeScore(shape, util)
	}
	return int64(math.Round(float64(sum) / float64(len(use))))
}
