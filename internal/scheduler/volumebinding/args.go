package volumebinding

import (
	"errors"
	"fmt"
	"time"
)

// DefaultBindTimeout is how long PreBind waits for the claims of a pod to
// be bound, upstream's bindTimeoutSeconds default.
const DefaultBindTimeout = 600 * time.Second

// ShapePoint is one point of the scoring function: a pod's volumes
// using Utilization percent of the chosen volumes' (or the capacity's)
// size score Score (0..10).
type ShapePoint struct {
	Utilization int32
	Score       int32
}

// maxShapeScore is the highest score of a shape point, upstream's
// MaxCustomPriorityScore.
const maxShapeScore = 10

// DefaultShape prefers the least utilised fit, as upstream's default
// with StorageCapacityScoring: an empty volume scores 10, a full one 0.
// Local-volume users who want to bin-pack give the reverse shape.
var DefaultShape = []ShapePoint{{Utilization: 0, Score: maxShapeScore}, {Utilization: 100, Score: 0}}

// Args configure the binding plugin.
type Args struct {
	// BindTimeout bounds PreBind's wait for the claims to be bound
	// (default DefaultBindTimeout).
	BindTimeout time.Duration
	// Shape is the scoring function (default DefaultShape); nil
	// Shape with NoScore set turns scoring off.
	Shape []ShapePoint
	// NoScore turns the Score extension point off.
	NoScore bool
}

// withDefaults returns a copy of a with defaults filled in.
func (a Args) withDefaults() Args {
	if a.BindTimeout == 0 {
		a.BindTimeout = DefaultBindTimeout
	}
	if len(a.Shape) == 0 && !a.NoScore {
		a.Shape = DefaultShape
	}
	return a
}

// Validate checks the arguments as upstream validates VolumeBindingArgs:
// a positive timeout, and shape points with increasing utilisation in
// 0..100 and scores in 0..10.
func (a Args) Validate() error {
	if a.BindTimeout < 0 {
		return fmt.Errorf("volume binding: bind timeout %v is negative", a.BindTimeout)
	}
	if a.NoScore && len(a.Shape) > 0 {
		return errors.New("volume binding: a scoring shape is given with scoring turned off")
	}
	for i, p := range a.Shape {
		if p.Utilization < 0 || p.Utilization > 100 {
			return fmt.Errorf("volume binding: shape point %d: utilization %d is not in 0..100", i, p.Utilization)
		}
		if p.Score < 0 || p.Score > maxShapeScore {
			return fmt.Errorf("volume binding: shape point %d: score %d is not in 0..%d", i, p.Score, maxShapeScore)
		}
		if i > 0 && p.Utilization <= a.Shape[i-1].Utilization {
			return fmt.Errorf("volume binding: shape point %d: utilization %d does not increase", i, p.Utilization)
		}
	}
	return nil
}
