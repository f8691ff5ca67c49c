package podbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// APIWrites is a snapshot of the API server's write requests
// (apiserver_request_total of the verbs that change objects), keyed by
// "VERB resource[/subresource]".
type APIWrites map[string]float64

// writeVerbs are the verbs of apiserver_request_total that write.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "DELETECOLLECTION": true, "APPLY": true, "CREATE": true, "UPDATE": true}

// ReadAPIWrites scrapes the API server's /metrics with the bench's
// (admin) client.
func ReadAPIWrites(ctx context.Context, cs kubernetes.Interface) (APIWrites, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	w := APIWrites{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "apiserver_request_total{"), "} ")
		if !ok {
			continue
		}
		l := metricLabels(labels)
		if !writeVerbs[l["verb"]] {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		w[key] += n
	}
	return w, sc.Err()
}

// metricLabels parses `a="x",b="y"` (label values hold no quotes here).
func metricLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// Since is the writes made after earlier: w minus earlier, keys with
// none left out.
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
