package provbench

import (
	"maps"
	"strings"
	"testing"

	"volplane/internal/node/podbench"
)

func TestCostPerClaim(t *testing.T) {
	before := podbench.APIMetrics{Writes: podbench.APIWrites{"events POST": 10, "leases PUT": 5}, CPUSeconds: 2}
	after := podbench.APIMetrics{Writes: podbench.APIWrites{"events POST": 40, "leases PUT": 5, "persistentvolumes POST": 10, "persistentvolumeclaims PUT": 20}, CPUSeconds: 2.5}
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
