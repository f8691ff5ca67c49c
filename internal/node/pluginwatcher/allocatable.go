package pluginwatcher

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/informers"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"

	"volplane/internal/csi/client"
	"volplane/internal/logging"
)

// allocatableSchedule is when each registered driver's allocatable count
// is read again.
type allocatableSchedule struct {
	period time.Duration
	next   time.Time
}

// runAllocatable refreshes, until ctx is done, the CSINode allocatable
// count of every registered driver whose CSIDriver sets
// nodeAllocatableUpdatePeriodSeconds, once per period (upstream's
// csiNodeUpdater, KEP-4876). CSIDriver objects come from an informer;
// a driver registered, unregistered or whose period changed is picked up
// at the next check, every reconcilePeriod.
func (w *Watcher) runAllocatable(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(w.cfg.Client, 0)
	inf := factory.Storage().V1().CSIDrivers()
	lister := inf.Lister()
	informer := inf.Informer()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return
	}
	schedule := map[string]allocatableSchedule{}
	tick := time.NewTicker(reconcilePeriod)
	defer tick.Stop()
	for {
		w.refreshDue(ctx, lister, schedule, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refreshDue refreshes the drivers whose period has passed and keeps
// schedule in step with the registered drivers and their periods.
func (w *Watcher) refreshDue(ctx context.Context, lister storagelisters.CSIDriverLister, schedule map[string]allocatableSchedule, now time.Time) {
	w.mu.Lock()
	names := make([]string, 0, len(w.owners))
	for n := range w.owners {
		names = append(names, n)
	}
	w.mu.Unlock()
	for n := range schedule {
		if !slices.Contains(names, n) {
			delete(schedule, n)
		}
	}
	for _, n := range names {
		period := time.Duration(0)
		if d, err := lister.Get(n); err == nil {
			period = updatePeriod(d)
		}
		s, ok := schedule[n]
		switch {
		case period == 0:
			delete(schedule, n)
			continue
		case !ok || s.period != period:
			// Registration has just written the count: the first
			// refresh is one period away, as upstream's ticker.
			schedule[n] = allocatableSchedule{period: period, next: now.Add(period)}
			continue
		case now.Before(s.next):
			continue
		}
		s.next = now.Add(period)
		schedule[n] = s
		if err := w.RefreshAllocatable(ctx, n); err != nil {
			logging.FromContext(ctx).Error("Failed to update CSIDriver", "driver", n, "err", err)
		}
	}
}

// updatePeriod is the CSIDriver's nodeAllocatableUpdatePeriodSeconds, 0
// when unset.
func updatePeriod(d *storagev1.CSIDriver) time.Duration {
	if d == nil || d.Spec.NodeAllocatableUpdatePeriodSeconds == nil || *d.Spec.NodeAllocatableUpdatePeriodSeconds <= 0 {
		return 0
	}
	return time.Duration(*d.Spec.NodeAllocatableUpdatePeriodSeconds) * time.Second
}

// RefreshAllocatable asks the registered driver name for NodeGetInfo
// again and writes its max_volumes_per_node as the allocatable count of
// the driver's CSINode entry (no allocatable when 0), as upstream's
// updateCSIDriver. The node ID, topology keys and labels stay as
// registration wrote them. A driver not registered is an error.
func (w *Watcher) RefreshAllocatable(ctx context.Context, name string) error {
	w.mu.Lock()
	reg := w.owners[name]
	w.mu.Unlock()
	if reg == nil {
		return fmt.Errorf("failed to create CSI client for driver %q: driver name %s not found in the list of registered CSI drivers", name, name)
	}
	c, err := client.New(client.Config{Endpoint: "unix://" + reg.endpoint, Timeout: w.cfg.CSITimeout})
	if err != nil {
		return fmt.Errorf("failed to create CSI client for driver %q: %w", name, err)
	}
	ni, err := c.NodeGetInfo(ctx)
	c.Close()
	if err != nil {
		return fmt.Errorf("failed to get NodeGetInfo from driver %q: %w", name, err)
	}
	if err := validateNodeInfo(ni); err != nil {
		return fmt.Errorf("failed to update driver %q: %w", name, err)
	}
	if err := w.info.setAllocatable(ctx, name, ni.MaxVolumes); err != nil {
		return fmt.Errorf("failed to update driver %q: %w", name, err)
	}
	return nil
}

// setAllocatable sets the allocatable count of driver name's CSINode
// entry; an entry that is not there is left so.
func (n *nodeInfo) setAllocatable(ctx context.Context, name string, maxVolumes int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		for i := range drivers {
			if drivers[i].Name != name {
				continue
			}
			drivers[i].Allocatable = nil
			if maxVolumes > 0 {
				drivers[i].Allocatable = &storagev1.VolumeNodeResources{Count: ptrInt32(min(maxVolumes, math.MaxInt32))}
			}
		}
		return drivers
	})
}
