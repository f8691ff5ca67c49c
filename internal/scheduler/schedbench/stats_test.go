package schedbench

import (
	"testing"
	"time"
)

func TestRateAndRatio(t *testing.T) {
	tests := []struct {
		name          string
		volume, plain shape
		wantVol       float64
		wantRatio     float64
		verdictPrefix string
	}{
		{"equal", shape{pods: 1000, wall: 10 * time.Second}, shape{pods: 1000, wall: 10 * time.Second}, 100, 1, "meets"},
		{"at the goal", shape{pods: 800, wall: 10 * time.Second}, shape{pods: 1000, wall: 10 * time.Second}, 80, 0.8, "meets"},
		{"below", shape{pods: 1000, wall: 20 * time.Second}, shape{pods: 1000, wall: 10 * time.Second}, 50, 0.5, "BELOW"},
		{"no plain figure", shape{pods: 10, wall: time.Second}, shape{}, 10, 0, "BELOW"},
		{"no wall time", shape{pods: 10}, shape{pods: 10, wall: time.Second}, 0, 0, "BELOW"},
	}
	for _, tt := range tests {
		if got := tt.volume.rate(); got != tt.wantVol {
			t.Errorf("%s: rate = %v, want %v", tt.name, got, tt.wantVol)
		}
		r := ratio(tt.volume, tt.plain)
		if r != tt.wantRatio {
			t.Errorf("%s: ratio = %v, want %v", tt.name, r, tt.wantRatio)
		}
		if v := verdict(r); len(v) < len(tt.verdictPrefix) || v[:len(tt.verdictPrefix)] != tt.verdictPrefix {
			t.Errorf("%s: verdict = %q", tt.name, v)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(5), 99, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}
