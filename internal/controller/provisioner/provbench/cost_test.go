package provbench

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

func TestParseCounters(t *testing.T) {
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
			got, err := parseCounters(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got.writes, tt.wantWrites) || got.cpu != tt.wantCPU {
				t.Fatalf("got writes %v cpu %v, want %v cpu %v", got.writes, got.cpu, tt.wantWrites, tt.wantCPU)
			}
		})
	}
}

func TestCostPerClaim(t *testing.T) {
	before := apiCounters{writes: map[string]float64{"events POST": 10, "leases PUT": 5}, cpu: 2}
	after := apiCounters{writes: map[string]float64{"events POST": 40, "leases PUT": 5, "persistentvolumes POST": 10, "persistentvolumeclaims PUT": 20}, cpu: 2.5}
	c := costPerClaim(before, after, 10)
	want := map[string]float64{"events POST": 3, "persistentvolumes POST": 1, "persistentvolumeclaims PUT": 2}
	if !maps.Equal(c.Writes, want) {
		t.Fatalf("writes %v, want %v (kinds that did not grow left out)", c.Writes, want)
	}
	if c.TotalWrites() != 6 || c.CPUSeconds != 0.05 {
		t.Fatalf("total %v cpu %v, want 6 and 0.05", c.TotalWrites(), c.CPUSeconds)
	}
	rows := c.rows(2)
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].Value != "6.0" || !strings.HasSuffix(rows[0].Note, ": events POST 3.0, persistentvolumeclaims PUT 2.0, persistentvolumes POST 1.0") {
		t.Errorf("writes row %+v: largest kinds first", rows[0])
	}
	if rows[1].Value != "50.0 ms" || !strings.Contains(rows[1].Note, "2 cores allow 40 claims/s") {
		t.Errorf("CPU row %+v", rows[1])
	}
}
