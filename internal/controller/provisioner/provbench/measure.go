package provbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/bootstrap"
	"volplane/internal/node/podbench"
)

// createsInFlight is how many claim create calls the bench has in flight
// at once: the streams the API grants one HTTP/2 connection (upstream's
// default, 100). With a call per claim all at once, client-go dialled a
// TLS connection for each call past that, about 870 for 1,000 claims, and
// their handshakes cost the child up some 4% of its CPU: the bench's
// artefact, not provisioning's. The API takes the claims as fast as
// before (the last create call returns within a few seconds either way).
const createsInFlight = 100

// measureClaims creates cfg.Claims claims of the Immediate class by
// parallel create calls, createsInFlight at a time, and waits until every
// one is Bound.
func measureClaims(ctx context.Context, cs kubernetes.Interface, claims *podbench.Marker, cfg Config, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res.ClaimBound = make([]time.Duration, cfg.Claims)
	bound := make([]time.Time, cfg.Claims)
	created := make([]time.Time, cfg.Claims)
	phases, err := startPhaseTracker(ctx, cs)
	if err != nil {
		return err
	}
	defer phases.Stop()
	errs := make([]error, cfg.Claims)
	returned := make([]time.Time, cfg.Claims)
	// The cost is worth having, not worth failing the run for.
	meter, costErr := podbench.StartCost(ctx, cs)
	first := time.Now()
	var wg sync.WaitGroup
	inFlight := make(chan struct{}, createsInFlight)
	for i := range cfg.Claims {
		wg.Go(func() {
			name := claimName(i)
			inFlight <- struct{}{}
			start := time.Now()
			created[i] = start
			if err := retry(ctx, func() error {
				_, err := cs.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, benchClaim(name, immediateClass), metav1.CreateOptions{})
				return err
			}); err != nil {
				<-inFlight
				errs[i] = fmt.Errorf("create claim %s: %w", name, err)
				return
			}
			returned[i] = time.Now()
			<-inFlight
			bound[i], errs[i] = claims.Wait(ctx, name, false)
			res.ClaimBound[i] = bound[i].Sub(start)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res.ClaimsAll = latest(bound).Sub(first)
	res.ClaimsCreated = latest(returned).Sub(first)
	if costErr == nil {
		var c podbench.Cost
		if c, costErr = meter.Stop(ctx, cs); costErr == nil {
			res.ClaimCost = costPerClaim(c, cfg.Claims)
		}
	}
	res.ClaimCostErr = costErr
	res.ClaimPhases = splitPhases(phases, created)
	return nil
}

// measurePods creates cfg.Pods pods at once, each with a new claim of the
// default class, and waits until every one is Running.
func measurePods(ctx context.Context, cs kubernetes.Interface, pods *podbench.Marker, cfg Config, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res.PodRunning = make([]time.Duration, cfg.Pods)
	running := make([]time.Time, cfg.Pods)
	errs := make([]error, cfg.Pods)
	first := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.Pods {
		wg.Go(func() {
			name := podName(i)
			if err := retry(ctx, func() error {
				_, err := cs.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, benchClaim(name, bootstrap.DefaultStorageClass), metav1.CreateOptions{})
				return err
			}); err != nil {
				errs[i] = fmt.Errorf("create claim %s: %w", name, err)
				return
			}
			start := time.Now()
			if err := retry(ctx, func() error {
				_, err := cs.CoreV1().Pods(namespace).Create(ctx, benchPod(name), metav1.CreateOptions{})
				return err
			}); err != nil {
				errs[i] = fmt.Errorf("create pod %s: %w", name, err)
				return
			}
			running[i], errs[i] = pods.Wait(ctx, name, false)
			res.PodRunning[i] = running[i].Sub(start)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res.PodsAll = latest(running).Sub(first)
	return nil
}

// teardown deletes the pods (grace period 1 s, as `kubectl delete --now`)
// and the claims at once and returns the time until none of them, no PV
// and no volume in the pool is left.
func teardown(ctx context.Context, cs kubernetes.Interface, pods, claims *podbench.Marker, podNames, claimNames []string, pool string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	grace := int64(1)
	start := time.Now()
	errs := make([]error, len(podNames)+len(claimNames))
	var wg sync.WaitGroup
	for i, n := range podNames {
		wg.Go(func() {
			errs[i] = retry(ctx, func() error {
				return cs.CoreV1().Pods(namespace).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &grace})
			})
		})
	}
	for i, n := range claimNames {
		wg.Go(func() {
			errs[len(podNames)+i] = retry(ctx, func() error {
				return cs.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, n, metav1.DeleteOptions{})
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	for _, n := range podNames {
		if _, err := pods.Wait(ctx, n, true); err != nil {
			return 0, fmt.Errorf("pod: %w", err)
		}
	}
	for _, n := range claimNames {
		if _, err := claims.Wait(ctx, n, true); err != nil {
			return 0, fmt.Errorf("claim: %w", err)
		}
	}
	// PVs and backend volumes go after their claims: poll for them.
	for {
		pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, fmt.Errorf("list PVs: %w", err)
		}
		left, err := poolVolumes(pool)
		if err != nil {
			return 0, err
		}
		if len(pvs.Items) == 0 && left == 0 {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d PVs and %d pool volumes left: %w", len(pvs.Items), left, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// poolDir is where the built-in driver of `up` keeps its volumes.
func poolDir(dataDir string) string { return filepath.Join(dataDir, "pool", "data") }

// poolVolumes counts the directory and block volumes in the pool (a
// missing directory holds none).
func poolVolumes(pool string) (int, error) {
	n := 0
	for _, sub := range []string{"volumes", "blocks"} {
		entries, err := os.ReadDir(filepath.Join(pool, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("pool: %w", err)
		}
		n += len(entries)
	}
	return n, nil
}

// retry calls op until it succeeds, fails for good or ctx ends. On a
// loaded machine the API answers a burst with timeouts (etcd's "request
// timed out", 500, 503, 504, 429) that a client is expected to retry; a
// create that finds its object, or a delete that finds none, was done by
// an earlier attempt whose answer was lost.
func retry(ctx context.Context, op func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := op()
		switch {
		case err == nil, apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
			return nil
		case !transient(err):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// transient reports whether err is an API answer worth retrying.
func transient(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		strings.Contains(err.Error(), "request timed out")
}

func latest(ts []time.Time) time.Time {
	var last time.Time
	for _, t := range ts {
		if t.After(last) {
			last = t
		}
	}
	return last
}
