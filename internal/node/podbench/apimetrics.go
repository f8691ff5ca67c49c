package podbench

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// The benches read the child up's own /metrics (its API server's
// registry, which also holds the process metrics of the one process that
// is API, etcd, controllers, node and driver alike) before and after what
// they time: the API writes by resource and verb, and the CPU seconds the
// process spent.

const (
	metricRequests = "apiserver_request_total"
	metricCPU      = "process_cpu_seconds_total"
)

// readVerbs are the request verbs that write nothing.
var readVerbs = map[string]bool{"GET": true, "LIST": true, "WATCH": true, "CONNECT": true}

// APIMetrics is one reading of the child's /metrics.
type APIMetrics struct {
	// Writes are the API's write requests, every code.
	Writes APIWrites
	// CPUSeconds is the process's CPU time so far.
	CPUSeconds float64
}

// APIWrites counts API writes by "resource[/subresource] VERB".
type APIWrites map[string]float64

// ReadAPIMetrics reads the API server's /metrics with the bench's
// (admin) client.
func ReadAPIMetrics(ctx context.Context, cs kubernetes.Interface) (APIMetrics, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return APIMetrics{}, fmt.Errorf("read /metrics: %w", err)
	}
	return parseAPIMetrics(string(raw))
}

// parseAPIMetrics takes the write requests and the CPU seconds out of a
// Prometheus text exposition.
func parseAPIMetrics(text string) (APIMetrics, error) {
	m := APIMetrics{Writes: APIWrites{}, CPUSeconds: -1}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, metricCPU+" "):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, metricCPU)), 64)
			if err != nil {
				return m, fmt.Errorf("%s: %w", metricCPU, err)
			}
			m.CPUSeconds = v
		case strings.HasPrefix(line, metricRequests+"{"):
			labels, value, err := splitSample(line[len(metricRequests):])
			if err != nil {
				return m, fmt.Errorf("%s: %w", metricRequests, err)
			}
			if readVerbs[labels["verb"]] || labels["resource"] == "" {
				continue
			}
			key := labels["resource"]
			if s := labels["subresource"]; s != "" {
				key += "/" + s
			}
			m.Writes[key+" "+labels["verb"]] += value
		}
	}
	if m.CPUSeconds < 0 {
		return m, fmt.Errorf("no %s in /metrics", metricCPU)
	}
	return m, nil
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

// Since is the writes made after earlier: w minus earlier, kinds that
// did not grow left out.
func (w APIWrites) Since(earlier APIWrites) APIWrites {
	out := APIWrites{}
	for k, v := range w {
		if d := v - earlier[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Total is the number of writes.
func (w APIWrites) Total() float64 {
	var t float64
	for _, v := range w {
		t += v
	}
	return t
}
