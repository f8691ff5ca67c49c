package provbench

import (
	"fmt"
	"slices"
	"strings"

	"volplane/internal/node/podbench"
)

// The cost of the Immediate claims, read from the child up's own /metrics
// and /proc/stat (podbench.StartCost) before the first create call and
// after the last claim was Bound: the API writes by resource and verb,
// the CPU seconds the process spent, and how busy the machine was. They show
// where a claim's time goes when the run is CPU-bound, and they vary much
// less with the machine's load than the rate does. Writes that trail the
// bind (the events, which each event source's broadcaster posts one
// after the other, and the Unused condition of the claims' protection
// controller) are counted only as far as they were done.

// Cost is what the Immediate claims cost the child up.
type Cost struct {
	// Writes are the API writes per claim by "resource VERB".
	Writes map[string]float64
	// CPUSeconds is the process's CPU time per claim.
	CPUSeconds float64
	// MachineBusy is how busy the machine's cores were, 0 to 1.
	MachineBusy float64
}

// costPerClaim is a stretch's cost over claims claims.
func costPerClaim(total podbench.Cost, claims int) Cost {
	n := float64(claims)
	c := Cost{Writes: map[string]float64{}, CPUSeconds: total.UpCPU / n, MachineBusy: total.Machine.BusyShare()}
	for k, d := range total.Writes {
		c.Writes[k] = d / n
	}
	return c
}

// TotalWrites is the API writes per claim.
func (c Cost) TotalWrites() float64 { return podbench.APIWrites(c.Writes).Total() }

// rows are the cost's lines of the table: the writes per claim with the
// largest kinds first, and the CPU per claim with the rate two cores
// would allow at that cost.
func (c Cost) rows(cores int) []podbench.Row {
	keys := make([]string, 0, len(c.Writes))
	for k := range c.Writes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c.Writes[a] != c.Writes[b] {
			if c.Writes[a] > c.Writes[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		if c.Writes[k] >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, c.Writes[k]))
		}
	}
	cpu := podbench.Row{Figure: "  up's CPU per claim", Value: fmt.Sprintf("%.1f ms", c.CPUSeconds*1000),
		Note: "process_cpu_seconds_total of the child up (API, etcd, controllers, driver), first create -> last Bound"}
	if c.CPUSeconds > 0 && cores > 0 {
		cpu.Note += fmt.Sprintf("; %d cores allow %.0f claims/s at this cost", cores, float64(cores)/c.CPUSeconds)
	}
	note := "done by the last Bound (events and the Unused condition may follow): " + strings.Join(parts, ", ")
	return []podbench.Row{
		{Figure: "  API writes per claim", Value: fmt.Sprintf("%.1f", c.TotalWrites()), Note: note},
		cpu,
		{Figure: "  machine busy", Value: fmt.Sprintf("%.0f%%", 100*c.MachineBusy), Note: fmt.Sprintf("of %d cores (/proc/stat), first create -> last Bound: up, the bench, and anything else running", cores)},
	}
}
