package podbench

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Cost is what a stretch of a bench cost: the API writes, the child up's
// CPU seconds and the whole machine's CPU time.
type Cost struct {
	Writes  APIWrites
	UpCPU   float64
	Machine MachineCPU
}

// CostMeter is a reading taken at the start of a stretch.
type CostMeter struct {
	api     APIMetrics
	machine MachineCPU
}

// StartCost reads the child's /metrics and the machine's CPU time.
func StartCost(ctx context.Context, cs kubernetes.Interface) (CostMeter, error) {
	api, err := ReadAPIMetrics(ctx, cs)
	if err != nil {
		return CostMeter{}, err
	}
	machine, err := ReadMachineCPU()
	return CostMeter{api: api, machine: machine}, err
}

// Stop reads again and returns the cost since StartCost.
func (m CostMeter) Stop(ctx context.Context, cs kubernetes.Interface) (Cost, error) {
	machine, err := ReadMachineCPU()
	if err != nil {
		return Cost{}, err
	}
	api, err := ReadAPIMetrics(ctx, cs)
	if err != nil {
		return Cost{}, err
	}
	return Cost{
		Writes:  api.Writes.Since(m.api.Writes),
		UpCPU:   api.CPUSeconds - m.api.CPUSeconds,
		Machine: machine.Since(m.machine),
	}, nil
}

// rows are a burst's cost rows: API writes, CPU per pod (up's and all
// else's) and how busy the machine was, over n pods and wall time.
func (c Cost) rows(prefix string, n, cores int, wall time.Duration) []Row {
	n = max(n, 1)
	perPod := func(seconds float64) string {
		return Millis(time.Duration(seconds * float64(time.Second) / float64(n)))
	}
	return []Row{
		{prefix + ": API writes per pod", fmt.Sprintf("%.1f", c.Writes.Total()/float64(n)), fmt.Sprintf("%.0f writes/s over the burst; the API writes ~1,300 objects/s here (bench binder, not measured in this run)", c.Writes.Total()/max(wall.Seconds(), 0.001))},
		{prefix + ": CPU per pod, up", perPod(c.UpCPU), "the child up (API, etcd, scheduler, controllers, node agent), from its process_cpu_seconds_total"},
		{prefix + ": CPU per pod, all else", perPod(c.Machine.Busy - c.UpCPU), "the machine's busy time (/proc/stat) less up's: runc, conmon, the containers, the bench, and anything else running"},
		{prefix + ": machine busy", fmt.Sprintf("%.0f%%", 100*c.Machine.BusyShare()), fmt.Sprintf("of %d cores over the burst", cores)},
	}
}
