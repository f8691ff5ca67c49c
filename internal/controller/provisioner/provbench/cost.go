package provbench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"

	"volplane/internal/node/podbench"
)

// The cost of the Immediate claims, read from the child up's own /metrics
// (its API server's registry, which also holds the process metrics of the
// one process that is API, etcd, controllers and driver alike) before the
// first create call and after the last claim was Bound: the API writes by
// verb and resource, and the CPU seconds the process spent. They show
// where a claim's time goes when the run is CPU-bound, and they vary much
// less with the machine's load than the rate does. Writes that trail the
// bind (the events, which the controller manager's one event broadcaster
// posts one after the other, and the Unused condition of the claims'
// protection controller) are counted only as far as they were done.

const (
	metricRequests = "apiserver_request_total"
	metricCPU      = "process_cpu_seconds_total"
)

// readVerbs are the request verbs that write nothing.
var readVerbs = map[string]bool{"GET": true, "LIST": true, "WATCH": true, "CONNECT": true}

// apiCounters are the counters read at one moment: writes per
// "resource[/subresource] VERB", and the process's CPU seconds.
type apiCounters struct {
	writes map[string]float64
	cpu    float64
}

// readCounters reads the child's /metrics.
func readCounters(ctx context.Context, cs kubernetes.Interface) (apiCounters, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiCounters{}, fmt.Errorf("read /metrics: %w", err)
	}
	return parseCounters(string(raw))
}

// parseCounters takes the write requests and the CPU seconds out of a
// Prometheus text exposition.
func parseCounters(text string) (apiCounters, error) {
	c := apiCounters{writes: map[string]float64{}, cpu: -1}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, metricCPU+" "):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, metricCPU)), 64)
			if err != nil {
				return c, fmt.Errorf("%s: %w", metricCPU, err)
			}
			c.cpu = v
		case strings.HasPrefix(line, metricRequests+"{"):
			labels, value, err := splitSample(line[len(metricRequests):])
			if err != nil {
				return c, fmt.Errorf("%s: %w", metricRequests, err)
			}
			if readVerbs[labels["verb"]] || labels["resource"] == "" {
				continue
			}
			key := labels["resource"]
			if s := labels["subresource"]; s != "" {
				key += "/" + s
			}
			c.writes[key+" "+labels["verb"]] += value
		}
	}
	if c.cpu < 0 {
		return c, fmt.Errorf("no %s in /metrics", metricCPU)
	}
	return c, nil
}

// splitSample splits `{k="v",...} value` into its labels and value.
func splitSample(s string) (map[string]string, float64, error) {
	end := strings.LastIndex(s, "}")
	if !strings.HasPrefix(s, "{") || end < 0 {
		return nil, 0, fmt.Errorf("malformed sample %q", s)
	}
	labels := map[string]string{}
	rest := s[1:end]
	for rest != "" {
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return nil, 0, fmt.Errorf("malformed labels %q", s)
		}
		name := strings.TrimPrefix(rest[:eq], ",")
		rest = rest[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			val.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, 0, fmt.Errorf("unterminated label value in %q", s)
		}
		labels[name] = val.String()
		rest = rest[i+1:]
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s[end+1:]), 64)
	if err != nil {
		return nil, 0, fmt.Errorf("value of %q: %w", s, err)
	}
	return labels, v, nil
}

// Cost is what the Immediate claims cost the child up.
type Cost struct {
	// Writes are the API writes per claim by "resource VERB".
	Writes map[string]float64
	// CPUSeconds is the process's CPU time per claim.
	CPUSeconds float64
}

// costPerClaim is the difference of two readings over claims claims.
func costPerClaim(before, after apiCounters, claims int) Cost {
	n := float64(claims)
	c := Cost{Writes: map[string]float64{}, CPUSeconds: (after.cpu - before.cpu) / n}
	for k, v := range after.writes {
		if d := v - before.writes[k]; d > 0 {
			c.Writes[k] = d / n
		}
	}
	return c
}

// TotalWrites is the API writes per claim.
func (c Cost) TotalWrites() float64 {
	var t float64
	for _, v := range c.Writes {
		t += v
	}
	return t
}

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
	}
}
