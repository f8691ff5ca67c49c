package podbench

import (
	"math"
	"testing"
)

func TestParseMachineCPU(t *testing.T) {
	cases := []struct {
		name       string
		text       string
		busy, idle float64
		wantErr    bool
	}{
		{name: "with guest columns", text: "cpu  1000 50 450 2000 100 10 20 30 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", busy: 15.3, idle: 21},
		{name: "no steal column", text: "cpu  1 2 3 4 5 6 7\n", wantErr: true},
		{name: "per-cpu line first", text: "cpu0 1 2 3 4 5 6 7 8\n", wantErr: true},
		{name: "not a number", text: "cpu  1 x 3 4 5 6 7 8\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseMachineCPU(tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (math.Abs(m.Busy-tc.busy) > 1e-9 || math.Abs(m.Idle-tc.idle) > 1e-9) {
				t.Errorf("busy %v idle %v, want %v %v", m.Busy, m.Idle, tc.busy, tc.idle)
			}
		})
	}
}

func TestMachineCPUSince(t *testing.T) {
	d := MachineCPU{Busy: 30, Idle: 12}.Since(MachineCPU{Busy: 10, Idle: 7})
	if d.Busy != 20 || d.Idle != 5 || d.BusyShare() != 0.8 {
		t.Errorf("since: %+v, busy share %v", d, d.BusyShare())
	}
	if (MachineCPU{}).BusyShare() != 0 {
		t.Error("busy share of nothing is not 0")
	}
}
