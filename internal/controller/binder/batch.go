package binder

import (
	"cmp"
	"context"
	"math/bits"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/logging"
	"volplane/internal/volumematch"
)

// The matcher. Upstream matches each claim the moment its sync runs, so in
// a burst the order in which objects arrive decides who gets what: a small
// claim that comes early takes a large volume whose exact claim comes
// later, and some claims are left with nothing. volplane lets a burst
// settle: unbound claims wait until no claim or volume has arrived for
// Config.SettleWindow (at most Config.MaxSettleDelay), and are then
// matched together against the volumes present, largest request first,
// each taking the smallest volume that fits. For one-dimensional sizes
// that greedy order never strands a claim that some assignment could
// serve, and gives every claim its exact fit when one exists.
//
// A burst made by parallel kubectl processes arrives over seconds, with
// gaps longer than the settle window, so one batch does not hold it. A
// claim whose only fit is a volume larger than it asked is therefore held
// until its group has had no arrival (claim or volume) for the group's
// burst gap, at most Config.MaxBurstHold, unless it arrived alone (its
// group quiet for the burst gap before it and since). Exact fits bind at
// once: an exact fit can neither strand a larger claim nor be larger than
// asked. Once the burst is quiet, the held claims are matched together,
// largest first.
//
// The burst gap grows with the burst: Config.BurstGap times the bit
// length of the number of arrivals the burst has had (3 s for the first,
// 6 s from the second, 9 s from the fourth, ... 21 s from the 64th). A
// lone user's claim still binds after the settle window, while a burst of
// many parallel processes on a loaded machine, whose starved kubectl
// processes leave stalls of several seconds in it, is not ended early by
// a stall. The guarantee: for a burst each of whose gaps is shorter than
// its burst gap at that point, and which lasts less than MaxBurstHold, no
// claim is stranded and none gets a larger volume than its exact fit,
// when exact fits exist. A lone claim waits the settle window, as before;
// a claim of a burst whose only fit is larger waits for the burst to end
// plus its burst gap.
//
// A claim that found nothing waits in its group (class, attributes
// class, volume mode); a volume becoming bindable in that group makes its
// waiting claims part of the next batch, so a claim does not wait for the
// periodic resync when its volume arrives.
//
// A claim for which a batch could decide nothing skips it (skipsBatch)
// and takes its no-volume path at once, as upstream's sync would: a
// WaitForFirstConsumer claim (the batch only ever gives it a volume
// pre-bound to it, which its sync already found missing), and a claim of
// a class that provisions when no bindable volume of its group fits it
// and no volume has arrived in the group for its burst gap. In a burst
// of such claims (a StatefulSet, a bench) the provisioning asks then
// overlap the claims still arriving instead of waiting a settle window
// per batch. The burst guarantee above is untouched for the bursts it
// speaks of: volumes arriving among claims keep their group batched, and
// a class that cannot provision always is. A volume that arrives later
// in such a claim's group still takes it through the wait below, as it
// does for any claim that found nothing; one that arrives before, in a
// burst whose volumes come last, is provisioned for, as upstream.
//
// A decision reserves its volume (it leaves the match index) and is
// carried out by the bind workers under the volume's and the claim's
// locks, which check it again against the newest objects: the matcher
// never writes, and a stale decision only costs a retry.

type batcher struct {
	mu        sync.Mutex
	pending   map[string]struct{}
	waiting   map[volumematch.Group]map[string]struct{}
	waitingIn map[string]volumematch.Group
	dirty     map[volumematch.Group]struct{}
	// decisions in flight: claim key -> volume name, "" for no match.
	decisions map[string]string
	// recheck holds claims that were due for a batch while their decision
	// was in flight; they join the batch after it is done.
	recheck     map[string]struct{}
	lastArrival time.Time
	firstWork   time.Time
	wake        chan struct{}

	// Burst detection (see holding below). burstGap is Config.BurstGap;
	// groupLast is the last arrival of a claim or volume in each group,
	// groupCount the arrivals of its current burst;
	// arrivals holds each claim's last arrival until it is decided; held
	// are claims whose only fit was larger than they asked, since when.
	burstGap   time.Duration
	groupLast  map[volumematch.Group]time.Time
	groupCount map[volumematch.Group]int
	arrivals   map[string]arrival
	held       map[string]holding
	// volumeLast is the last arrival of a volume in each group.
	volumeLast map[volumematch.Group]time.Time
}

// holding is a held claim's group and since when it is held.
type holding struct {
	g     volumematch.Group
	since time.Time
}

// arrival is when a claim arrived in its group, and whether the group had
// been quiet for the burst gap before (a lone claim).
type arrival struct {
	g    volumematch.Group
	at   time.Time
	lone bool
}

func newBatcher(burstGap time.Duration) *batcher {
	return &batcher{
		burstGap:   burstGap,
		groupLast:  map[volumematch.Group]time.Time{},
		groupCount: map[volumematch.Group]int{},
		arrivals:   map[string]arrival{},
		held:       map[string]holding{},
		volumeLast: map[volumematch.Group]time.Time{},
		pending:    map[string]struct{}{},
		waiting:    map[volumematch.Group]map[string]struct{}{},
		waitingIn:  map[string]volumematch.Group{},
		dirty:      map[volumematch.Group]struct{}{},
		decisions:  map[string]string{},
		recheck:    map[string]struct{}{},
		wake:       make(chan struct{}, 1),
	}
}

func (b *batcher) wakeUp() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *batcher) hasWorkLocked() bool { return len(b.pending) > 0 || len(b.dirty) > 0 }

// arrivedLocked notes an arrival in group g: part of the group's burst
// when it comes within the burst gap, else the first of a new one.
func (b *batcher) arrivedLocked(g volumematch.Group, now time.Time) {
	last, seen := b.groupLast[g]
	if !seen || now.Sub(last) >= b.gapLocked(g) {
		b.groupCount[g] = 0
	}
	b.groupCount[g]++
	if now.After(last) {
		b.groupLast[g] = now
	}
}

// gapLocked is group g's burst gap: Config.BurstGap times the bit length
// of its burst's arrivals so far (see the doc above).
func (b *batcher) gapLocked(g volumematch.Group) time.Duration {
	return b.burstGap * time.Duration(max(bits.Len(uint(b.groupCount[g])), 1))
}

func (b *batcher) noteWorkLocked(now time.Time) {
	if !b.hasWorkLocked() {
		b.firstWork = now
	}
	b.lastArrival = now
}

// addClaim makes the claim, of group g, part of the next batch.
func (b *batcher) addClaim(key string, g volumematch.Group, now time.Time) {
	b.mu.Lock()
	b.noteWorkLocked(now)
	b.pending[key] = struct{}{}
	last, seen := b.groupLast[g]
	b.arrivals[key] = arrival{g: g, at: now, lone: !seen || now.Sub(last) >= b.gapLocked(g)}
	b.arrivedLocked(g, now)
	b.mu.Unlock()
	b.wakeUp()
}

// volumeArrived notes a volume that became bindable in group g: it
// extends the settle window of a batch being collected, and puts the
// claims waiting in g into the next batch.
func (b *batcher) volumeArrived(g volumematch.Group, now time.Time) {
	b.mu.Lock()
	b.arrivedLocked(g, now)
	b.volumeLast[g] = now
	if b.hasWorkLocked() {
		b.lastArrival = now
	}
	if len(b.waiting[g]) > 0 {
		b.noteWorkLocked(now)
		b.dirty[g] = struct{}{}
	}
	b.mu.Unlock()
	b.wakeUp()
}

// volumesQuiet is whether no volume has arrived in group g for its burst
// gap.
func (b *batcher) volumesQuiet(g volumematch.Group, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	last, seen := b.volumeLast[g]
	return !seen || now.Sub(last) >= b.gapLocked(g)
}

// decideAlone decides, outside any batch, that the claim, of group g, has
// no volume; with wait, it waits in g for one as a batch's claim that
// found nothing does. Its arrival still counts in its group's burst.
func (b *batcher) decideAlone(key string, g volumematch.Group, wait bool, now time.Time) {
	b.mu.Lock()
	b.arrivedLocked(g, now)
	b.mu.Unlock()
	b.decide(key, "")
	if wait {
		b.wait(key, g)
	}
}

// forget drops a deleted claim.
func (b *batcher) forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, key)
	delete(b.recheck, key)
	delete(b.arrivals, key)
	delete(b.held, key)
	b.unwaitLocked(key)
}

func (b *batcher) unwaitLocked(key string) {
	if g, ok := b.waitingIn[key]; ok {
		delete(b.waitingIn, key)
		delete(b.waiting[g], key)
		if len(b.waiting[g]) == 0 {
			delete(b.waiting, g)
		}
	}
}

func (b *batcher) hasWork() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hasWorkLocked()
}

// hasHeld reports whether claims are held for their burst to settle.
func (b *batcher) hasHeld() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held) > 0
}

func (b *batcher) pendingLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// due says whether the batch is ready, or how long until it may be:
// pending claims once no claim or volume has arrived for settle (at most
// max after the first), held claims once their group has been quiet for
// the burst gap (at most maxHold after they were first held).
func (b *batcher) due(now time.Time, settle, max, maxHold time.Duration) (ready bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wait = -1
	if b.hasWorkLocked() {
		quiet := now.Sub(b.lastArrival)
		waited := now.Sub(b.firstWork)
		if quiet >= settle || waited >= max {
			return true, 0
		}
		wait = min(settle-quiet, max-waited)
	}
	for _, h := range b.held {
		d := b.holdLeftLocked(h, now, maxHold)
		if d <= 0 {
			return true, 0
		}
		if wait < 0 || d < wait {
			wait = d
		}
	}
	return false, wait
}

// holdLeftLocked is how much longer a held claim waits: until its group
// has been quiet for the burst gap, or maxHold after it was first held.
func (b *batcher) holdLeftLocked(h holding, now time.Time, maxHold time.Duration) time.Duration {
	return min(h.since.Add(maxHold).Sub(now), b.groupLast[h.g].Add(b.gapLocked(h.g)).Sub(now))
}

// mayTakeLarger says whether claim key may now be given a volume larger
// than it asked for: when it arrived alone (its group quiet for the burst
// gap before and since), when its group has been quiet for the burst gap,
// or when it has been held for maxHold. Otherwise a burst is still
// arriving, and its exact fit, or a larger claim that needs the volume,
// may be in it.
func (b *batcher) mayTakeLarger(key string, g volumematch.Group, now time.Time, maxHold time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := b.groupLast[g]
	if a, ok := b.arrivals[key]; ok && a.lone && !last.After(a.at) {
		return true
	}
	if now.Sub(last) >= b.gapLocked(g) {
		return true
	}
	h, held := b.held[key]
	return held && now.Sub(h.since) >= maxHold
}

// hold keeps a claim whose only fit is larger than it asked until its
// burst has settled (see due).
func (b *batcher) hold(key string, g volumematch.Group, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.held[key]; !ok {
		b.held[key] = holding{g: g, since: now}
	}
}

// unhold ends the holding of claims a round did not hold again.
func (b *batcher) unhold(keys []string, kept map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if !kept[k] {
			delete(b.held, k)
		}
	}
}

// take returns the claims of the next batch: the pending ones, those
// waiting in a group where a volume arrived, and held ones whose burst
// settled, minus those with a decision in flight.
func (b *batcher) take(now time.Time, maxHold time.Duration) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.pending))
	for k := range b.pending {
		keys = append(keys, k)
	}
	clear(b.pending)
	for k, h := range b.held {
		if b.holdLeftLocked(h, now, maxHold) <= 0 {
			keys = append(keys, k)
		}
	}
	for g := range b.dirty {
		for k := range b.waiting[g] {
			keys = append(keys, k)
			delete(b.waitingIn, k)
		}
		delete(b.waiting, g)
	}
	clear(b.dirty)
	out := keys[:0]
	for _, k := range keys {
		if _, busy := b.decisions[k]; busy {
			b.recheck[k] = struct{}{}
			continue
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (b *batcher) decide(key, volume string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decisions[key] = volume
	delete(b.arrivals, key)
	delete(b.held, key)
	b.unwaitLocked(key)
}

func (b *batcher) decision(key string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.decisions[key]
	return v, ok
}

// deferIfInFlight reports whether a decision for key is in flight; if
// so, the claim joins the batch after it, so that whatever made the
// caller look at the claim again is not lost.
func (b *batcher) deferIfInFlight(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.decisions[key]; !ok {
		return false
	}
	b.recheck[key] = struct{}{}
	return true
}

// done ends the decision in flight for key. If the claim was due for a
// batch meanwhile, it joins the next one.
func (b *batcher) done(key string, now time.Time) {
	b.mu.Lock()
	delete(b.decisions, key)
	_, again := b.recheck[key]
	if again {
		delete(b.recheck, key)
		b.noteWorkLocked(now)
		b.pending[key] = struct{}{}
	}
	b.mu.Unlock()
	if again {
		b.wakeUp()
	}
}

// wait parks a claim that found no volume in its group.
func (b *batcher) wait(key string, g volumematch.Group) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unwaitLocked(key)
	if b.waiting[g] == nil {
		b.waiting[g] = map[string]struct{}{}
	}
	b.waiting[g][key] = struct{}{}
	b.waitingIn[key] = g
}

// runMatcher runs match rounds whenever a batch is due.
func (c *Controller) runMatcher(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ready, wait := c.batcher.due(c.now(), c.cfg.SettleWindow, c.cfg.MaxSettleDelay, c.cfg.MaxBurstHold)
		if ready {
			c.matchRound(ctx)
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.batcher.wake:
		case <-timer.C:
		}
	}
}

type candidate struct {
	key     string
	claim   *v1.PersistentVolumeClaim
	request int64
	delay   bool
}

// matchRound decides a volume (or none) for every claim of the batch and
// hands the decisions to the bind workers.
func (c *Controller) matchRound(ctx context.Context) {
	now := c.now()
	keys := c.batcher.take(now, c.cfg.MaxBurstHold)
	if len(keys) == 0 {
		return
	}
	log := logging.FromContext(ctx)
	cands := make([]candidate, 0, len(keys))
	for _, k := range keys {
		claim := c.store.claim(k)
		if claim == nil || !needsMatch(claim) {
			continue
		}
		delay, err := storagehelpers.IsDelayBindingMode(claim, c.classes)
		if err != nil {
			log.Warn("cannot tell the claim's binding mode", "claim", k, "err", err)
			c.claimQueue.AddRateLimited(k)
			continue
		}
		cands = append(cands, candidate{key: k, claim: claim, request: volumematch.Request(claim), delay: delay})
	}
	c.metrics.batchSize.Observe(float64(len(cands)))
	slices.SortFunc(cands, func(a, b candidate) int {
		if d := cmp.Compare(b.request, a.request); d != 0 {
			return d
		}
		if d := a.claim.CreationTimestamp.Time.Compare(b.claim.CreationTimestamp.Time); d != 0 {
			return d
		}
		return cmp.Compare(a.key, b.key)
	})

	s := c.store
	s.mu.Lock()
	heldAgain := map[string]bool{}
	// Claims taken from the held ones and not held again (decided, bound
	// meanwhile, gone) are held no more.
	defer c.batcher.unhold(keys, heldAgain)
	decided := make([]string, 0, len(cands))
	for _, cd := range cands {
		start := time.Now()
		volume := ""
		if pv := s.preboundLocked(cd.claim); pv != nil {
			volume = pv.Name
		} else if !cd.delay {
			pv, err := s.index.Best(cd.claim)
			if err != nil {
				log.Warn("cannot match claim", "claim", cd.key, "err", err)
			} else if pv != nil && volumematch.Capacity(pv) > cd.request && !c.batcher.mayTakeLarger(cd.key, volumematch.ClaimGroup(cd.claim), now, c.cfg.MaxBurstHold) {
				c.batcher.hold(cd.key, volumematch.ClaimGroup(cd.claim), now)
				heldAgain[cd.key] = true
				c.metrics.matchSeconds.Observe(time.Since(start).Seconds())
				continue
			} else if pv != nil {
				volume = pv.Name
				s.reserveLocked(pv.Name, cd.key)
			}
		}
		c.metrics.matchSeconds.Observe(time.Since(start).Seconds())
		c.batcher.decide(cd.key, volume)
		if volume == "" && !cd.delay {
			c.batcher.wait(cd.key, volumematch.ClaimGroup(cd.claim))
		}
		decided = append(decided, cd.key)
	}
	s.mu.Unlock()
	for _, k := range decided {
		c.bindQueue.Add(k)
	}
}

// skipsBatch says whether an unbound claim with no volume pre-bound to it
// skips the batch (see the doc above), and whether it is a
// delayed-binding claim.
func (c *Controller) skipsBatch(claim *v1.PersistentVolumeClaim, g volumematch.Group) (delay, skip bool) {
	name := storagehelpers.GetPersistentVolumeClaimClass(claim)
	if name == "" {
		return false, false
	}
	class, err := c.classes.Get(name)
	if err != nil {
		return false, false
	}
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		return true, true
	}
	if c.cfg.DisableDynamicProvisioning || !c.provisions(class) || !c.batcher.volumesQuiet(g, c.now()) {
		return false, false
	}
	return false, !c.store.mayFit(claim)
}

// needsMatch is whether the matcher should choose a volume for claim: not
// bound, not naming a volume. A claim being deleted is matched too, as
// upstream does: a pod already using it may still start, and its volume
// is released once the claim is gone.
func needsMatch(claim *v1.PersistentVolumeClaim) bool {
	return claim.Spec.VolumeName == "" &&
		!metav1.HasAnnotation(claim.ObjectMeta, storagehelpers.AnnBindCompleted)
}
