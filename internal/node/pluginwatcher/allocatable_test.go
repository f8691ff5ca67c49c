package pluginwatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func allocatable(d storagev1.CSINodeDriver) string {
	if d.Allocatable == nil || d.Allocatable.Count == nil {
		return "none"
	}
	return fmt.Sprint(*d.Allocatable.Count)
}

// A driver whose CSIDriver sets nodeAllocatableUpdatePeriodSeconds gets
// its CSINode allocatable count from NodeGetInfo again, once per period;
// one without the period keeps what registration wrote.
func TestAllocatableRefresh(t *testing.T) {
	withPeriod := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "periodic.csi.example.com"},
		Spec: storagev1.CSIDriverSpec{NodeAllocatableUpdatePeriodSeconds: ptr.To[int64](1)}}
	without := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "fixed.csi.example.com"}}
	e := newEnv(t, withPeriod, without)
	e.run(t)
	e.driver(t, withPeriod.Name, "n1", 10, nil)
	e.driver(t, without.Name, "n1", 10, nil)
	eventually(t, "both registered", func() bool {
		_, err1 := e.drivers.Get(withPeriod.Name)
		_, err2 := e.drivers.Get(without.Name)
		return err1 == nil && err2 == nil
	})
	for _, n := range []string{withPeriod.Name, without.Name} {
		if got := allocatable(e.registered(t, n, "n1")); got != "10" {
			t.Fatalf("%s registered with allocatable %s, want 10", n, got)
		}
	}
	e.csi[withPeriod.Name].setMaxVolumes(3)
	e.csi[without.Name].setMaxVolumes(3)
	eventually(t, "the periodic driver's count refreshed", func() bool {
		return allocatable(e.registered(t, withPeriod.Name, "n1")) == "3"
	})
	// 0 volumes reported: no allocatable at all, as at registration.
	e.csi[withPeriod.Name].setMaxVolumes(0)
	eventually(t, "the periodic driver's count removed", func() bool {
		return allocatable(e.registered(t, withPeriod.Name, "n1")) == "none"
	})
	if got := allocatable(e.registered(t, without.Name, "n1")); got != "10" {
		t.Errorf("driver without a period refreshed to %s", got)
	}
}

// The schedule follows the registered drivers and their CSIDriver's
// period: nothing is due right after registration, a driver is due once
// its period has passed, and one whose period is removed is dropped.
func TestRefreshDue(t *testing.T) {
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "d.csi.example.com"},
		Spec: storagev1.CSIDriverSpec{NodeAllocatableUpdatePeriodSeconds: ptr.To[int64](60)}}
	e := newEnv(t, d)
	factory := informers.NewSharedInformerFactory(e.client, 0)
	inf := factory.Storage().V1().CSIDrivers()
	lister, informer := inf.Lister(), inf.Informer()
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	defer factory.Shutdown() // after cancel: Shutdown waits for the informer to stop
	defer cancel()
	cache.WaitForCacheSync(ctx.Done(), informer.HasSynced)

	schedule := map[string]allocatableSchedule{}
	now := time.Now()
	e.w.refreshDue(ctx, lister, schedule, now)
	if len(schedule) != 0 {
		t.Fatalf("schedule %v with no driver registered", schedule)
	}
	e.w.owners[d.Name] = &registration{path: "/nowhere", name: d.Name, endpoint: "/nowhere.sock"}
	e.w.refreshDue(ctx, lister, schedule, now)
	if s := schedule[d.Name]; s.period != time.Minute || !s.next.Equal(now.Add(time.Minute)) {
		t.Fatalf("schedule %+v, want the first refresh a minute away", schedule)
	}
	// Due: the refresh fails (no driver at the socket), the next one is
	// still a period later.
	later := now.Add(61 * time.Second)
	e.w.refreshDue(ctx, lister, schedule, later)
	if s := schedule[d.Name]; !s.next.Equal(later.Add(time.Minute)) {
		t.Errorf("after a due refresh: %+v", s)
	}
	delete(e.w.owners, d.Name)
	e.w.refreshDue(ctx, lister, schedule, later)
	if len(schedule) != 0 {
		t.Errorf("schedule %v after the driver left", schedule)
	}
}
