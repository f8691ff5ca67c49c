package podbench

import "testing"

func TestMetricLabelsAndSince(t *testing.T) {
	l := metricLabels(`code="201",component="apiserver",group="",resource="pods",subresource="binding",verb="POST",version="v1"`)
	if l["verb"] != "POST" || l["resource"] != "pods" || l["subresource"] != "binding" {
		t.Fatalf("labels %v", l)
	}
	before := APIWrites{"POST pods": 10, "PUT leases": 5}
	after := APIWrites{"POST pods": 110, "PUT leases": 5, "POST events": 3}
	d := after.Since(before)
	if len(d) != 2 || d["POST pods"] != 100 || d["POST events"] != 3 || d.Total() != 103 {
		t.Fatalf("since %v total %v, want POST pods 100, POST events 3, 103", d, d.Total())
	}
}
