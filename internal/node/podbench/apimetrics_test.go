package podbench

import (
	"maps"
	"strings"
	"testing"
)

// exposition is a cut of the API server's /metrics as it reads.
const exposition = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 30
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="events",scope="namespace",subresource="",verb="PATCH",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="persistentvolumeclaims",scope="namespace",subresource="status",verb="PUT",version="v1"} 20
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="persistentvolumeclaims",scope="namespace",subresource="status",verb="PUT",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="persistentvolumeclaims",scope="namespace",subresource="",verb="GET",version="v1"} 99
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/healthz",verb="GET",version=""} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="weird",scope="namespace",subresource="a\"b",verb="DELETE",version="v1"} 4
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
`

func TestParseAPIMetrics(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		wantWrites map[string]float64
		wantCPU    float64
		wantErr    string
	}{
		{
			name: "writes by resource and verb, every code, reads left out",
			text: exposition,
			wantWrites: map[string]float64{
				"events POST": 30, "events PATCH": 2,
				"persistentvolumeclaims/status PUT": 21,
				`weird/a"b DELETE`:                  4,
			},
			wantCPU: 12.5,
		},
		{name: "no CPU metric", text: "apiserver_request_total{verb=\"POST\",resource=\"pods\"} 1\n", wantErr: "no process_cpu_seconds_total"},
		{name: "unterminated label", text: "apiserver_request_total{verb=\"POST} 1\nprocess_cpu_seconds_total 1\n", wantErr: "unterminated"},
		{name: "bad value", text: "apiserver_request_total{verb=\"POST\",resource=\"pods\"} x\nprocess_cpu_seconds_total 1\n", wantErr: "value"},
		{name: "bad CPU value", text: "process_cpu_seconds_total lots\n", wantErr: "process_cpu_seconds_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAPIMetrics(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got.Writes, APIWrites(tt.wantWrites)) || got.CPUSeconds != tt.wantCPU {
				t.Fatalf("got writes %v cpu %v, want %v cpu %v", got.Writes, got.CPUSeconds, tt.wantWrites, tt.wantCPU)
			}
		})
	}
}

func TestSinceAndTotal(t *testing.T) {
	before := APIWrites{"pods POST": 10, "leases PUT": 5}
	after := APIWrites{"pods POST": 110, "leases PUT": 5, "events POST": 3}
	d := after.Since(before)
	if !maps.Equal(d, APIWrites{"pods POST": 100, "events POST": 3}) || d.Total() != 103 {
		t.Fatalf("since %v total %v, want pods POST 100, events POST 3, 103", d, d.Total())
	}
}
