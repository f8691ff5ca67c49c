package controller

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// countingController counts its runs and whether one is running.
type countingController struct{ starts, running *atomic.Int32 }

func (c countingController) Run(ctx context.Context) {
	c.starts.Add(1)
	c.running.Add(1)
	defer c.running.Add(-1)
	<-ctx.Done()
}

// TestLostLeaseCampaignsAgain: a manager whose Lease is taken stops its
// controllers and, once the Lease is free, runs them again, without
// returning.
func TestLostLeaseCampaignsAgain(t *testing.T) {
	var starts, running atomic.Int32
	m, err := electingManager(Descriptor{Name: "counting", Init: func(context.Context, *Context) (Controller, error) {
		return countingController{&starts, &running}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.run(ctx, client) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if n := running.Load(); n != 0 {
			t.Errorf("%d controllers still running after run returned", n)
		}
	}()

	waitFor(t, "the first run", func() bool { return starts.Load() == 1 && running.Load() == 1 })

	// Another holder takes the Lease and keeps renewing it.
	leases := client.CoordinationV1().Leases(LeaseNamespace)
	steal := func() {
		l, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptr.To("other")
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		l.Spec.LeaseDurationSeconds = ptr.To[int32](60)
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	steal()
	waitFor(t, "the controllers to stop", func() bool { return running.Load() == 0 })
	select {
	case err := <-done:
		t.Fatalf("run returned after the lease was lost: %v", err)
	default:
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("controllers started %d times while another held the lease", n)
	}

	// The other holder goes away: the manager campaigns and leads again.
	if err := leases.Delete(ctx, LeaseName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second run", func() bool { return starts.Load() == 2 && running.Load() == 1 })
	l, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != "me" {
		t.Fatalf("lease holder %q, want me", got)
	}
}

// electingManager is a manager of d that elects with short lease times.
func electingManager(d Descriptor) (*Manager, error) {
	return New(Config{
		REST:          &rest.Config{Host: "unused"},
		LeaderElect:   true,
		Identity:      "me",
		LeaseDuration: 600 * time.Millisecond,
		RenewDeadline: 400 * time.Millisecond,
		RetryPeriod:   100 * time.Millisecond,
		Controllers:   []Descriptor{d},
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailedStartReleasesLease: a controller that cannot be built ends
// run with its error instead of holding the Lease while running nothing.
func TestFailedStartReleasesLease(t *testing.T) {
	m, err := electingManager(Descriptor{Name: "broken", Init: func(context.Context, *Context) (Controller, error) {
		return nil, errors.New("no such thing")
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = m.run(ctx, fake.NewClientset())
	if err == nil || !strings.Contains(err.Error(), "no such thing") {
		t.Fatalf("run = %v, want the controller's error", err)
	}
	if ctx.Err() != nil {
		t.Fatal("run held on until the test's deadline")
	}
}
