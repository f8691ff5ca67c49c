package pods

import (
	"testing"
	"time"
)

// The crash-loop backoff as a table: each row is a crash after the
// container ran for `ran`; the restart waits `wait` (0: at once).
func TestBackoffSequence(t *testing.T) {
	type crash struct {
		ran  time.Duration
		wait time.Duration
	}
	tests := []struct {
		name    string
		crashes []crash
	}{{
		name:    "doubling from 10s, first restart at once",
		crashes: []crash{{time.Second, 0}, {time.Second, 10 * time.Second}, {time.Second, 20 * time.Second}, {time.Second, 40 * time.Second}, {time.Second, 80 * time.Second}},
	}, {
		name: "capped at 5 min",
		crashes: []crash{{0, 0}, {0, 10 * time.Second}, {0, 20 * time.Second}, {0, 40 * time.Second}, {0, 80 * time.Second},
			{0, 160 * time.Second}, {0, 300 * time.Second}, {0, 300 * time.Second}},
	}, {
		name:    "reset after running more than 10 min",
		crashes: []crash{{0, 0}, {0, 10 * time.Second}, {0, 20 * time.Second}, {11 * time.Minute, 0}, {0, 10 * time.Second}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod("b", ctr("app"))
			h := newHarness(t, pod)
			pw := h.worker(pod)
			for i, c := range tt.crashes {
				h.clock.Step(c.ran)
				a := action{Container: &pod.Spec.Containers[0], Start: true, BackoffFrom: &instance{FinishedAt: h.clock.Now()}}
				var waited time.Duration
				for {
					if _, held := pw.backoffHold(pod, a); !held {
						break
					}
					h.clock.Step(time.Second)
					waited += time.Second
				}
				if waited != c.wait {
					t.Errorf("crash %d: waited %v, want %v", i+1, waited, c.wait)
				}
			}
		})
	}
}
