package provbench

import (
	"maps"
	"strings"
	"testing"

	"volplane/internal/node/podbench"
)

func TestCostPerClaim(t *testing.T) {
	total := podbench.Cost{
		Writes:  podbench.APIWrites{"events POST": 30, "persistentvolumes POST": 10, "persistentvolumeclaims PUT": 20},
		UpCPU:   0.5,
		Machine: podbench.MachineCPU{Busy: 3, Idle: 1},
	}
	c := costPerClaim(total, 10)
	want := map[string]float64{"events POST": 3, "persistentvolumes POST": 1, "persistentvolumeclaims PUT": 2}
	if !maps.Equal(c.Writes, want) {
		t.Fatalf("writes %v, want %v", c.Writes, want)
	}
	if c.TotalWrites() != 6 || c.CPUSeconds != 0.05 {
		t.Fatalf("total %v cpu %v, want 6 and 0.05", c.TotalWrites(), c.CPUSeconds)
	}
	rows := c.rows(2)
	if len(rows) != 3 {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].Value != "6.0" || !strings.HasSuffix(rows[0].Note, ": events POST 3.0, persistentvolumeclaims PUT 2.0, persistentvolumes POST 1.0") {
		t.Errorf("writes row %+v: largest kinds first", rows[0])
	}
	if rows[1].Value != "50.0 ms" || !strings.Contains(rows[1].Note, "2 cores allow 40 claims/s") {
		t.Errorf("CPU row %+v", rows[1])
	}
	if rows[2].Value != "75%" {
		t.Errorf("machine row %+v", rows[2])
	}
}
