package podbench

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	one20 := ms(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
	tests := []struct {
		name string
		d    []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 20 unsorted", one20, 50, 10 * time.Millisecond},
		{"p99 of 20 is the max", one20, 99, 20 * time.Millisecond},
		{"p100", one20, 100, 20 * time.Millisecond},
		{"tiny p is the min", one20, 0.1, 1 * time.Millisecond},
		{"p50 of 4", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", append(ms(make([]int, 98)...), 5*time.Millisecond, 9*time.Millisecond), 99, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.d, tt.p); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
	if one20[0] != 20*time.Millisecond {
		t.Error("Percentile sorted its input in place")
	}
}

func TestGoalRow(t *testing.T) {
	tests := []struct {
		g    Goal
		want string
	}{
		{Goal{"lone p99 < 300 ms", 120 * time.Millisecond, 300 * time.Millisecond, true}, "met"},
		{Goal{"lone p99 < 300 ms", 300 * time.Millisecond, 300 * time.Millisecond, true}, "not met"},
		{Goal{"lone p99 < 300 ms", 301 * time.Millisecond, 300 * time.Millisecond, true}, "not met"},
		{Goal{"within 1.5x floor", 150 * time.Millisecond, 150 * time.Millisecond, false}, "met"},
		{Goal{"within 1.5x floor", 151 * time.Millisecond, 150 * time.Millisecond, false}, "not met"},
	}
	for _, tt := range tests {
		if got := tt.g.Row().Value; got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.g, got, tt.want)
		}
	}
}

func TestPrintTable(t *testing.T) {
	var b strings.Builder
	err := PrintTable(&b, []Row{
		{Figure: "lone p50", Value: Millis(1500 * time.Microsecond), Note: "20 pods"},
		{Figure: "reference (not measured here)", Value: "p99 <= 5 s", Note: "sig-scalability"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header and 2 rows, got %q", b.String())
	}
	// Columns line up: every line has its value at the same offset.
	col := strings.Index(lines[0], "value")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "1.5 ms") && !strings.HasPrefix(l[col:], "p99 <= 5 s") {
			t.Errorf("value not in its column: %q (column %d)", l, col)
		}
	}
}
