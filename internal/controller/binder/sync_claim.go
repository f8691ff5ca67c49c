package binder

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/controller/podindex"
	"volplane/internal/logging"
	"volplane/internal/volumematch"
)

// Upstream's wording of the events a waiting claim gets.
const (
	msgNoVolumeNoClass = "no persistent volumes available for this claim and no storage class is set"
	msgWaitForConsumer = "waiting for first consumer to be created before binding"
	msgClaimLostRef    = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
	msgClaimLostVolume = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
	msgClaimMisbound   = "Two claims are bound to the same volume, this one is bound incorrectly"
)

// syncClaimKey syncs one claim from the claim queue.
//
//	claim                         sync                transition
//	----------------------------  ------------------  ------------------------------
//	gone                          -                   (handled on the delete event)
//	no bind-completed annotation  syncUnboundClaim    Pending -> Bound, or waits
//	bind-completed                syncBoundClaim      Bound / Lost <-> Bound
func (c *Controller) syncClaimKey(ctx context.Context, key string) error {
	claim := c.store.claim(key)
	if claim == nil {
		return nil
	}
	if !metav1.HasAnnotation(claim.ObjectMeta, storagehelpers.AnnBindCompleted) {
		return c.syncUnboundClaim(ctx, key)
	}
	return c.syncBoundClaim(ctx, key)
}

// lockClaimWithVolume locks the volume pick(claim) names and the claim,
// and returns their newest versions; it retries when the claim changed to
// name another volume while the locks were taken. claim is nil when the
// claim is gone.
func (c *Controller) lockClaimWithVolume(key string, pick func(*v1.PersistentVolumeClaim) string) (claim *v1.PersistentVolumeClaim, volume *v1.PersistentVolume, unlock func()) {
	for {
		claim = c.store.claim(key)
		if claim == nil {
			return nil, nil, func() {}
		}
		name := pick(claim)
		unlock = lockPair(c.locks, name, key)
		claim = c.store.claim(key)
		if claim == nil {
			return nil, nil, unlock
		}
		if pick(claim) == name {
			if name != "" {
				volume = c.store.volume(name)
			}
			return claim, volume, unlock
		}
		unlock()
	}
}

// syncUnboundClaim handles a claim that is not (completely) bound.
//
//	claim.spec.volumeName  volume                          action
//	---------------------  ------------------------------  ------------------------------------
//	""                     one pre-bound to the claim      bind it on a bind worker, at once
//	                                                       (also finishes interrupted binds)
//	""                     none                            to the matcher (batch.go), or
//	                                                       straight to provisioning or the
//	                                                       wait for a pod (skipsBatch)
//	X                      missing                         Pending, FailedBinding event
//	X                      unbound, fits                   bind
//	X                      unbound, does not fit           Pending, VolumeMismatch event
//	X                      bound to this claim             bind (finish)
//	X                      bound to another claim          Pending, FailedBinding event
func (c *Controller) syncUnboundClaim(ctx context.Context, key string) error {
	if c.batcher.deferIfInFlight(key) {
		return nil
	}
	pick := func(cl *v1.PersistentVolumeClaim) string {
		if cl.Spec.VolumeName != "" {
			return cl.Spec.VolumeName
		}
		if pv := c.store.preboundVolume(cl); pv != nil {
			return pv.Name
		}
		return ""
	}
	claim, volume, unlock := c.lockClaimWithVolume(key, pick)
	defer unlock()
	if claim == nil || metav1.HasAnnotation(claim.ObjectMeta, storagehelpers.AnnBindCompleted) {
		// Gone, or bound meanwhile: the update queued it again.
		return nil
	}

	if claim.Spec.VolumeName == "" {
		if volume != nil && storagehelpers.IsVolumeBoundToClaim(volume, claim) && volumematch.PreboundFits(volume, claim) {
			// Pre-bound (by the scheduler, a provisioner or an interrupted
			// bind): nothing to choose, so no batch to wait for; the bind
			// workers carry it out, many at once, instead of this claim
			// worker, one of a few, spending its three or four writes.
			c.batcher.decide(key, volume.Name)
			c.bindQueue.Add(key)
			return nil
		}
		g := volumematch.ClaimGroup(claim)
		if delay, skip := c.skipsBatch(claim, g); skip {
			// Nothing a batch could decide (batch.go): straight to the
			// no-volume path, on a bind worker.
			c.batcher.decideAlone(key, g, !delay, c.now())
			c.bindQueue.Add(key)
			return nil
		}
		c.batcher.addClaim(key, g, c.now())
		return nil
	}

	// The user asked for a specific volume.
	name := claim.Spec.VolumeName
	switch {
	case volume == nil:
		c.recorder.Event(claim, v1.EventTypeWarning, reasonFailedBinding,
			fmt.Sprintf("volume %q requested by the claim does not exist", name))
		_, err := c.updateClaimStatus(ctx, claim, v1.ClaimPending, nil)
		return err
	case volume.Spec.ClaimRef == nil:
		if err := volumematch.CheckVolumeSatisfyClaim(volume, claim); err != nil {
			c.recorder.Event(claim, v1.EventTypeWarning, reasonVolumeMismatch,
				fmt.Sprintf("Cannot bind to requested volume %q: %s", name, err))
			_, err := c.updateClaimStatus(ctx, claim, v1.ClaimPending, nil)
			return err
		}
		return c.bind(ctx, volume, claim)
	case storagehelpers.IsVolumeBoundToClaim(volume, claim):
		return c.bind(ctx, volume, claim)
	default:
		c.recorder.Event(claim, v1.EventTypeWarning, reasonFailedBinding,
			fmt.Sprintf("volume %q already bound to a different claim.", name))
		if metav1.HasAnnotation(claim.ObjectMeta, storagehelpers.AnnBoundByController) {
			// Only a removed bind-completed annotation leads here.
			return fmt.Errorf("invalid binding of claim %s to volume %s: volume already claimed by %s",
				key, name, claimRefKey(volume.Spec.ClaimRef))
		}
		_, err := c.updateClaimStatus(ctx, claim, v1.ClaimPending, nil)
		return err
	}
}

// syncBoundClaim handles a claim that was bound.
//
//	volume                                  action
//	--------------------------------------  --------------------------------------------
//	spec.volumeName empty                   Lost, ClaimLost event
//	missing                                 Lost, ClaimLost event
//	unbound, or claimRef with claim's UID   bind (completes or repairs; Lost -> Bound)
//	claimRef without UID, or another claim  Lost, ClaimMisbound event
func (c *Controller) syncBoundClaim(ctx context.Context, key string) error {
	claim, volume, unlock := c.lockClaimWithVolume(key, func(cl *v1.PersistentVolumeClaim) string { return cl.Spec.VolumeName })
	defer unlock()
	if claim == nil {
		return nil
	}
	switch {
	case claim.Spec.VolumeName == "":
		_, err := c.updateClaimStatusWithEvent(ctx, claim, v1.ClaimLost, nil, v1.EventTypeWarning, reasonClaimLost, msgClaimLostRef)
		return err
	case volume == nil:
		_, err := c.updateClaimStatusWithEvent(ctx, claim, v1.ClaimLost, nil, v1.EventTypeWarning, reasonClaimLost, msgClaimLostVolume)
		return err
	case volume.Spec.ClaimRef == nil, volume.Spec.ClaimRef.UID == claim.UID:
		// A volume that came back with this claim's reference (its UID
		// included) is bound again: Lost -> Bound. One that names the
		// claim without the UID is, as upstream decides, another claimant.
		return c.bind(ctx, volume, claim)
	default:
		_, err := c.updateClaimStatusWithEvent(ctx, claim, v1.ClaimLost, nil, v1.EventTypeWarning, reasonClaimMisbound, msgClaimMisbound)
		return err
	}
}

// processDecision carries out the matcher's decision for a claim: bind it
// to the chosen volume, or take the no-volume path. A failure is logged
// here and retried through the claim queue, once; processDecision itself
// returns nil.
func (c *Controller) processDecision(ctx context.Context, key string) error {
	volume, ok := c.batcher.decision(key)
	if !ok {
		return nil
	}
	var err error
	if volume != "" {
		err = c.bindDecided(ctx, key, volume)
		if c.store.unreserve(volume) {
			if pv := c.store.volume(volume); pv != nil {
				c.batcher.volumeArrived(volumematch.VolumeGroup(pv), c.now())
			}
		}
	} else {
		err = c.syncNoMatch(ctx, key)
	}
	c.batcher.done(key, c.now())
	if err != nil {
		// The claim is what is retried, through its own queue; the
		// decision is spent, so the bind queue forgets it (nil below).
		log := logging.FromContext(ctx)
		if apierrors.IsConflict(err) {
			log.Debug("decision conflicted, claim retried", "claim", key, "volume", volume, "err", err)
		} else {
			log.Warn("decision failed, claim retried", "claim", key, "volume", volume, "err", err)
		}
		if volume != "" && apierrors.IsConflict(err) {
			// An object changed under the decision: match the claim
			// again in the next batch, against the newer objects, rather
			// than after a backoff that lets smaller claims go first. The
			// sync below finishes a bind that got past the claim's spec.
			if cl := c.store.claim(key); cl != nil {
				c.batcher.addClaim(key, volumematch.ClaimGroup(cl), c.now())
			}
		}
		c.claimQueue.AddRateLimited(key)
		return nil
	}
	c.claimQueue.Forget(key)
	return nil
}

// bindDecided binds claim key to the volume the matcher chose, after
// checking the choice against the newest objects.
func (c *Controller) bindDecided(ctx context.Context, key, volumeName string) error {
	unlock := lockPair(c.locks, volumeName, key)
	defer unlock()
	claim := c.store.claim(key)
	volume := c.store.volume(volumeName)
	if claim == nil || !needsMatch(claim) {
		return nil
	}
	if volume == nil {
		return fmt.Errorf("volume %s chosen for claim %s is gone", volumeName, key)
	}
	switch {
	case volume.Spec.ClaimRef == nil:
		if err := volumematch.CheckVolumeSatisfyClaim(volume, claim); err != nil {
			return fmt.Errorf("volume %s chosen for claim %s no longer fits: %w", volumeName, key, err)
		}
	case storagehelpers.IsVolumeBoundToClaim(volume, claim):
		if !volumematch.PreboundFits(volume, claim) {
			return fmt.Errorf("volume %s pre-bound to claim %s no longer fits", volumeName, key)
		}
	default:
		return fmt.Errorf("volume %s chosen for claim %s was taken by %s", volumeName, key, claimRefKey(volume.Spec.ClaimRef))
	}
	return c.bind(ctx, volume, claim)
}

// syncNoMatch is the path of an unbound claim the matcher found no volume
// for. As upstream: a claim without class gets the default class; a
// delayed-binding claim waits for its pod; a claim with a class is
// provisioned; otherwise it waits, with a FailedBinding event.
func (c *Controller) syncNoMatch(ctx context.Context, key string) error {
	unlock := c.locks.Lock(claimLockKey(key))
	defer unlock()
	claim := c.store.claim(key)
	if claim == nil || !needsMatch(claim) {
		return nil
	}
	if updated, err := c.assignDefaultClass(ctx, claim); err != nil || updated {
		return err
	}
	delay, err := storagehelpers.IsDelayBindingMode(claim, c.classes)
	if err != nil {
		return err
	}
	switch {
	case delay && !storagehelpers.IsDelayBindingProvisioning(claim):
		c.emitWaitForConsumer(claim)
	case storagehelpers.GetPersistentVolumeClaimClass(claim) != "":
		// Provisioning writes the claim and creates the volume; the bind
		// follows from the new volume's pre-binding.
		return c.provisionClaim(ctx, claim)
	default:
		c.recorder.Event(claim, v1.EventTypeNormal, reasonFailedBinding, msgNoVolumeNoClass)
	}
	_, err = c.updateClaimStatus(ctx, claim, v1.ClaimPending, nil)
	return err
}

// emitWaitForConsumer tells a delayed-binding claim's owner what it waits
// for: a pod, or its pods to be scheduled.
func (c *Controller) emitWaitForConsumer(claim *v1.PersistentVolumeClaim) {
	reason, message := reasonWaitForFirstConsumer, msgWaitForConsumer
	var names []string
	if c.pods != nil {
		pods, _ := podindex.Pods(c.pods, claim.Namespace, claim.Name)
		for _, p := range pods {
			if !podindex.IsTerminated(p) && p.Spec.NodeName == "" {
				names = append(names, p.Name)
			}
		}
	}
	switch len(names) {
	case 0:
	case 1:
		reason, message = reasonWaitForPodScheduled, fmt.Sprintf("waiting for pod %s to be scheduled", names[0])
	default:
		reason, message = reasonWaitForPodScheduled, fmt.Sprintf("waiting for pods %s to be scheduled", strings.Join(names, ","))
	}
	c.recorder.Event(claim, v1.EventTypeNormal, reason, message)
}

// assignDefaultClass gives a claim without any class the default
// StorageClass (upstream's retroactive default class). It reports whether
// it wrote the claim.
func (c *Controller) assignDefaultClass(ctx context.Context, claim *v1.PersistentVolumeClaim) (bool, error) {
	if storagehelpers.PersistentVolumeClaimHasClass(claim) {
		return false, nil
	}
	class, err := c.defaultClass()
	if err != nil || class == nil {
		return false, err
	}
	clone := claim.DeepCopy()
	clone.Spec.StorageClassName = &class.Name
	if _, err := c.writeClaim(ctx, clone); err != nil {
		return false, err
	}
	// The store already has the written claim, so its informer event
	// queues nothing: sync it again now, with its class.
	c.claimQueue.Add(claimKey(claim))
	logging.FromContext(ctx).Info("assigned the default storage class", "claim", claimKey(claim), "class", class.Name)
	return true, nil
}

const (
	annDefaultClass     = "storageclass.kubernetes.io/is-default-class"
	annBetaDefaultClass = "storageclass.beta.kubernetes.io/is-default-class"
)

// defaultClass returns the default StorageClass, the newest when several
// claim to be (ties by name), nil when none.
func (c *Controller) defaultClass() (*storagev1.StorageClass, error) {
	classes, err := c.classes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing storage classes: %w", err)
	}
	var best *storagev1.StorageClass
	for _, sc := range classes {
		if sc.Annotations[annDefaultClass] != "true" && sc.Annotations[annBetaDefaultClass] != "true" {
			continue
		}
		if best == nil || sc.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&best.CreationTimestamp) && sc.Name < best.Name) {
			best = sc
		}
	}
	return best, nil
}
