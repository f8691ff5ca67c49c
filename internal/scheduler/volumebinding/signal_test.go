package volumebinding

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSignal: a notify wakes the waiters of its key only, once; a
// forgotten waiter leaves no entry behind.
func TestSignal(t *testing.T) {
	tests := []struct {
		name   string
		notify []string
		wantA  bool // waiter on ns/a and pv/x
		wantB  bool // waiter on ns/b
	}{
		{"nothing", nil, false, false},
		{"claim a", []string{"ns/a"}, true, false},
		{"volume x", []string{"pv/x"}, true, false},
		{"claim b", []string{"ns/b"}, false, true},
		{"both keys of a, twice", []string{"ns/a", "pv/x", "ns/a"}, true, false},
		{"other", []string{"ns/c", "pv/y"}, false, false},
	}
	for _, tt := range tests {
		s := newSignal()
		keysA := []string{"ns/a", "pv/x"}
		a := s.changes(keysA)
		b := s.changes([]string{"ns/b"})
		for _, k := range tt.notify {
			s.notify(k)
		}
		if closed(a) != tt.wantA || closed(b) != tt.wantB {
			t.Errorf("%s: woke a=%v b=%v, want a=%v b=%v", tt.name, closed(a), closed(b), tt.wantA, tt.wantB)
		}
		s.forget(keysA, a)
		s.forget([]string{"ns/b"}, b)
		if len(s.waiters) != 0 {
			t.Errorf("%s: waiters left after forget: %v", tt.name, s.waiters)
		}
	}
}
