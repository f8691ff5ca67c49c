package csidriver

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestConcurrentCreatesNeverOversell: creates racing for the last bytes of
// the pool, whose records are written outside spaceMu, never promise more
// than the pool holds, and the bytes of those in flight are given back:
// afterwards the pool fills up exactly.
func TestConcurrentCreatesNeverOversell(t *testing.T) {
	d, _ := fakeDriver(t)
	ctx := context.Background()
	const fit = 8
	d.space = func() (int64, int64, error) { return fit * mib, fit * mib, nil }
	var wg sync.WaitGroup
	errs := make([]error, 3*fit)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = d.CreateVolume(ctx, createReq(fmt.Sprintf("race-%d", i), mib, nil))
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			created++
		case codes.ResourceExhausted:
		default:
			t.Fatalf("create: %v", err)
		}
	}
	var promised int64
	for _, v := range d.store.ListVolumes() {
		promised += v.CapacityBytes
	}
	if created == 0 || promised > fit*mib || promised != int64(created)*mib {
		t.Fatalf("%d created, %d bytes promised; the pool holds %d", created, promised, fit*mib)
	}
	if n := d.reserving.Load(); n != 0 {
		t.Fatalf("%d bytes still reserved after every create returned", n)
	}
	for i := created; i < fit; i++ {
		mustCreate(t, d, createReq(fmt.Sprintf("fill-%d", i), mib, nil))
	}
	_, err := d.CreateVolume(ctx, createReq("one-too-many", mib, nil))
	wantCode(t, err, codes.ResourceExhausted)
}
