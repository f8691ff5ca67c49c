package provbench

import (
	"fmt"
	"runtime"
	"time"

	"volplane/internal/bootstrap"
	"volplane/internal/node/podbench"
)

// goalPerSecond is issue 20's goal: claims bound per second.
const goalPerSecond = 100

// Result is what one run measured.
type Result struct {
	Claims, Pods int
	// ClaimBound is each claim's create call -> Bound; ClaimsAll the time
	// from the first create call until the last claim was Bound.
	ClaimBound []time.Duration
	ClaimsAll  time.Duration
	// ClaimsCreated is the first create call -> the last one returned;
	// ClaimPhases splits each claim's time between the components.
	ClaimsCreated time.Duration
	ClaimPhases   Phases
	// ClaimCost is what the claims cost the child up (API writes, CPU),
	// unless ClaimCostErr says why it was not read.
	ClaimCost    Cost
	ClaimCostErr error
	// PodRunning is each pod's create call -> Running; PodsAll the time
	// from the first create call until the last pod was Running.
	PodRunning []time.Duration
	PodsAll    time.Duration
	// Teardown is delete calls -> no pod, claim, PV or pool volume left.
	Teardown time.Duration
	// ClaimsDone, PodsDone and TeardownDone say which phases completed;
	// the figures of the others are not printed.
	ClaimsDone, PodsDone, TeardownDone bool
	// LoadStart and LoadEnd are the load averages before and after.
	LoadStart, LoadEnd string
}

// PerSecond is claims bound per second over the whole burst.
func (r Result) PerSecond() float64 {
	if r.ClaimsAll <= 0 {
		return 0
	}
	return float64(len(r.ClaimBound)) / r.ClaimsAll.Seconds()
}

// Rows is the printed table: the figures measured, the references, the
// goal.
func (r Result) Rows() []podbench.Row {
	ms := podbench.Millis
	verdict := "not met"
	if !r.ClaimsDone {
		verdict = "not measured"
	} else if r.PerSecond() >= goalPerSecond {
		verdict = "met"
	}
	var rows []podbench.Row
	if r.ClaimsDone {
		rows = append(rows,
			podbench.Row{Figure: fmt.Sprintf("%d claims (Immediate): bound per second", r.Claims), Value: fmt.Sprintf("%.1f /s", r.PerSecond()), Note: fmt.Sprintf("all Bound %s after the first create call; parallel create calls, %d in flight, 1Mi each", ms(r.ClaimsAll), createsInFlight)},
			podbench.Row{Figure: "claim created -> Bound p50", Value: ms(podbench.Percentile(r.ClaimBound, 50)), Note: "each claim from its own create call to the watch event"},
			podbench.Row{Figure: "claim created -> Bound p99", Value: ms(podbench.Percentile(r.ClaimBound, 99))},
			podbench.Row{Figure: "claims: last create call returned", Value: ms(r.ClaimsCreated), Note: "after the first create call"})
		rows = append(rows, r.ClaimPhases.rows()...)
		if r.ClaimCostErr != nil {
			rows = append(rows, podbench.Row{Figure: "  API writes and CPU per claim", Value: "not measured", Note: r.ClaimCostErr.Error()})
		} else {
			rows = append(rows, r.ClaimCost.rows(runtime.NumCPU())...)
		}
	} else {
		rows = append(rows, podbench.Row{Figure: fmt.Sprintf("%d claims (Immediate)", r.Claims), Value: "not measured", Note: "the phase failed"})
	}
	if r.PodsDone {
		rows = append(rows,
			podbench.Row{Figure: fmt.Sprintf("%d pods + claims of %s: created -> Running p50", r.Pods, bootstrap.DefaultStorageClass), Value: ms(podbench.Percentile(r.PodRunning, 50)), Note: "WaitForFirstConsumer: scheduled, provisioned, attached, staged, published; from the pod's create call"},
			podbench.Row{Figure: fmt.Sprintf("%d pods + claims: created -> Running p99", r.Pods), Value: ms(podbench.Percentile(r.PodRunning, 99))},
			podbench.Row{Figure: fmt.Sprintf("%d pods + claims: all Running", r.Pods), Value: ms(r.PodsAll), Note: "from the first create call"})
	} else {
		rows = append(rows, podbench.Row{Figure: fmt.Sprintf("%d pods + claims of %s", r.Pods, bootstrap.DefaultStorageClass), Value: "not measured", Note: "the phase failed or did not run"})
	}
	teardown := podbench.Row{Figure: fmt.Sprintf("teardown of %d pods and %d claims", r.Pods, r.Claims+r.Pods), Value: "not measured", Note: "the phase failed or did not run"}
	if r.TeardownDone {
		teardown.Value, teardown.Note = ms(r.Teardown), "delete calls -> no pod, claim or PV in the API, no volume in the pool"
	}
	return append(rows, teardown,
		podbench.Row{Figure: "load average (1/5/15 min)", Value: r.LoadStart, Note: "at start; at end " + r.LoadEnd},
		podbench.Row{Figure: "reference (not measured here)", Value: "~4 volumes/s", Note: "upstream provisioning (kubernetes/kubernetes#95497: client throttling)"},
		podbench.Row{Figure: "reference (not measured here)", Value: "~6 binds/s", Note: "upstream binding (kubernetes/kubernetes#95497)"},
		podbench.Row{Figure: "reference (not measured here)", Value: "5 requests/s", Note: "external-provisioner's default client QPS"},
		podbench.Row{Figure: fmt.Sprintf("goal: >= %d claims bound/s", goalPerSecond), Value: verdict, Note: fmt.Sprintf("measured %.1f /s", r.PerSecond())},
	)
}
