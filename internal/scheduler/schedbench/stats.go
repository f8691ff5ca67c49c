package schedbench

import (
	"fmt"
	"slices"
	"time"

	"volplane/internal/node/podbench"
)

// shape is what one shape of pods measured.
type shape struct {
	name string
	pods int
	// wall is the time from the first create to the last bind.
	wall time.Duration
	// creates is the time from the first create to the last create's
	// answer (the API server's share: the rate cannot beat pods/creates).
	creates time.Duration
	// latencies are each pod's create (call start) to bind (seen in the
	// watch).
	latencies []time.Duration
	// phases split the volume shape's latencies.
	phases phases
	// cost is what the shape cost from the first create to the last bind:
	// the API writes (the bench's own node heartbeats left out), up's CPU
	// and the machine's.
	cost podbench.Cost
}

// rate is pods scheduled per second over the shape's wall time.
func (s shape) rate() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.pods) / s.wall.Seconds()
}

// percentile is the p-th percentile (0..100) of ds, nearest rank; zero
// for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ratio is the volume shape's rate as a share of the plain one's.
func ratio(volume, plain shape) float64 {
	if plain.rate() == 0 {
		return 0
	}
	return volume.rate() / plain.rate()
}

// verdict says whether the ratio meets issue 19's goal.
func verdict(r float64) string {
	if r >= goalRatio {
		return fmt.Sprintf("meets the goal (>= %.0f%%)", goalRatio*100)
	}
	return fmt.Sprintf("BELOW the goal (>= %.0f%%)", goalRatio*100)
}

// goalRatio is issue 19's goal: the volume case at >= 80% of the
// no-volume rate.
const goalRatio = 0.8
