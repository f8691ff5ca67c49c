package hostopstest

import "testing"

// recorder is a testing.TB that records Fatal and Skip instead of ending
// the test.
type recorder struct {
	testing.TB
	fatal, skip bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatal(...any)          { r.fatal = true }
func (r *recorder) Skip(...any)           { r.skip = true }
func (r *recorder) Fatalf(string, ...any) { r.fatal = true }

func TestRequireRootFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		name        string
		euid        int
		ci          string
		fatal, skip bool
	}{
		{"root runs", 0, "true", false, false},
		{"root runs outside CI", 0, "", false, false},
		{"not root under CI fails", 1000, "true", true, false},
		{"not root outside CI skips", 1000, "", false, true},
		{"CI must be exactly true to fail", 1000, "1", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			requireRoot(r, tc.euid, tc.ci)
			if r.fatal != tc.fatal || r.skip != tc.skip {
				t.Errorf("fatal=%v skip=%v, want fatal=%v skip=%v", r.fatal, r.skip, tc.fatal, tc.skip)
			}
		})
	}
}
