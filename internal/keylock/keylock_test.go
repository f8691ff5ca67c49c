package keylock

import (
	"sync"
	"testing"
	"time"
)

func TestLockExcludesPerKey(t *testing.T) {
	k := New()
	unlock := k.Lock("a")
	got := make(chan string, 2)
	go func() {
		u := k.Lock("b")
		got <- "b"
		u()
	}()
	go func() {
		u := k.Lock("a")
		got <- "a"
		u()
	}()
	if first := <-got; first != "b" {
		t.Fatalf("%q got its lock while a was held", first)
	}
	select {
	case <-got:
		t.Fatal("a second holder of a while the first held it")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	if second := <-got; second != "a" {
		t.Fatalf("got %q, want a after its release", second)
	}
}

// TestLockOverlappingSets takes overlapping key sets in opposite orders
// from many goroutines: sorted locking must not deadlock, a key given
// twice is locked once, and nothing stays behind.
func TestLockOverlappingSets(t *testing.T) {
	k := New()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			var unlock func()
			if i%2 == 0 {
				unlock = k.Lock("pv/x", "pvc/ns/c", "pv/x")
			} else {
				unlock = k.Lock("pvc/ns/c", "pv/x")
			}
			unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock")
	}
	if n := len(k.locks); n != 0 {
		t.Errorf("%d locks left behind", n)
	}
}
