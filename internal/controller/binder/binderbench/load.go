package binderbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

const gi = int64(1) << 30

func newPV(name string, size int64, class string, modes []v1.PersistentVolumeAccessMode, mode v1.PersistentVolumeMode) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: *resource.NewQuantity(size, resource.BinarySI)},
			AccessModes:                   modes,
			StorageClassName:              class,
			VolumeMode:                    ptr.To(mode),
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/nonexistent/volplane-bench/" + name}},
		},
	}
}

func newPVC(ns, name string, size int64, class string, modes []v1.PersistentVolumeAccessMode, mode v1.PersistentVolumeMode) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: ptr.To(class),
			VolumeMode:       ptr.To(mode),
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: *resource.NewQuantity(size, resource.BinarySI)}},
		},
	}
}

// mixed returns n volumes of mixed sizes (1..100Gi), classes, access
// modes and volume modes, and n claims, each fitting the volume of the
// same index (so every claim can be bound), in shuffled order.
func mixed(ns, prefix string, n int, seed uint64) ([]*v1.PersistentVolume, []*v1.PersistentVolumeClaim) {
	r := rand.New(rand.NewPCG(seed, 42))
	classes := []string{"", "bench-gold", "bench-silver", "bench-bronze"}
	modeSets := [][]v1.PersistentVolumeAccessMode{
		{v1.ReadWriteOnce}, {v1.ReadWriteOnce, v1.ReadOnlyMany}, {v1.ReadWriteMany},
	}
	var pvs []*v1.PersistentVolume
	var pvcs []*v1.PersistentVolumeClaim
	for i := range n {
		class := classes[r.IntN(len(classes))]
		modes := modeSets[r.IntN(len(modeSets))]
		mode := v1.PersistentVolumeFilesystem
		if r.IntN(5) == 0 {
			mode = v1.PersistentVolumeBlock
		}
		size := int64(1+r.IntN(100)) * gi
		req := int64(1+r.IntN(int(size/gi))) * gi
		pvs = append(pvs, newPV(fmt.Sprintf("%s-pv-%05d", prefix, i), size, class, modes, mode))
		pvcs = append(pvcs, newPVC(ns, fmt.Sprintf("%s-c-%05d", prefix, i), req, class, modes, mode))
	}
	r.Shuffle(len(pvs), func(i, j int) { pvs[i], pvs[j] = pvs[j], pvs[i] })
	r.Shuffle(len(pvcs), func(i, j int) { pvcs[i], pvcs[j] = pvcs[j], pvcs[i] })
	return pvs, pvcs
}

// parallel runs fn(0..n-1) on workers goroutines and returns how long it
// took; the first error stops it.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

func createVolumes(ctx context.Context, c kubernetes.Interface, pvs []*v1.PersistentVolume, workers int) (time.Duration, error) {
	return parallel(ctx, len(pvs), workers, func(ctx context.Context, i int) error {
		_, err := c.CoreV1().PersistentVolumes().Create(ctx, pvs[i], metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating volume %s: %w", pvs[i].Name, err)
		}
		return nil
	})
}

func createClaims(ctx context.Context, c kubernetes.Interface, pvcs []*v1.PersistentVolumeClaim, workers int) (time.Duration, error) {
	return parallel(ctx, len(pvcs), workers, func(ctx context.Context, i int) error {
		_, err := c.CoreV1().PersistentVolumeClaims(pvcs[i].Namespace).Create(ctx, pvcs[i], metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating claim %s: %w", pvcs[i].Name, err)
		}
		return nil
	})
}

func ensureNamespace(ctx context.Context, c kubernetes.Interface, ns string) error {
	_, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return nil
}

// boundWatch counts the claims of a namespace that reach Bound, from a
// watch: it costs the API one watch, not a list per poll.
type boundWatch struct {
	mu      sync.Mutex
	bound   map[types.UID]time.Time
	claims  map[types.UID]*v1.PersistentVolumeClaim
	changed chan struct{}
	stop    context.CancelFunc
}

func watchBound(ctx context.Context, c kubernetes.Interface, ns string) (*boundWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &boundWatch{bound: map[types.UID]time.Time{}, claims: map[types.UID]*v1.PersistentVolumeClaim{}, changed: make(chan struct{}, 1), stop: cancel}
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().PersistentVolumeClaims().Informer()
	note := func(obj any) {
		pvc, ok := obj.(*v1.PersistentVolumeClaim)
		if !ok {
			return
		}
		w.mu.Lock()
		w.claims[pvc.UID] = pvc
		if _, seen := w.bound[pvc.UID]; !seen && pvc.Status.Phase == v1.ClaimBound {
			w.bound[pvc.UID] = time.Now()
		}
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: note, UpdateFunc: func(_, o any) { note(o) }}); err != nil {
		cancel()
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("claim watch did not sync")
	}
	return w, nil
}

func (w *boundWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bound)
}

// waitBound waits until n claims are Bound, or until none has been bound
// for stall; it returns when the last claim was bound.
func (w *boundWatch) waitBound(ctx context.Context, n int, stall time.Duration) (time.Time, bool) {
	last := time.Now()
	lastCount := -1
	for {
		c := w.count()
		if c >= n {
			return w.lastBound(), true
		}
		if c != lastCount {
			lastCount, last = c, time.Now()
		}
		if time.Since(last) > stall {
			return w.lastBound(), false
		}
		select {
		case <-ctx.Done():
			return w.lastBound(), false
		case <-w.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *boundWatch) lastBound() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t time.Time
	for _, b := range w.bound {
		if b.After(t) {
			t = b
		}
	}
	return t
}

// snapshot returns the claims as last seen.
func (w *boundWatch) snapshot() []*v1.PersistentVolumeClaim {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*v1.PersistentVolumeClaim, 0, len(w.claims))
	for _, c := range w.claims {
		out = append(out, c)
	}
	return out
}

// countBound lists the namespace's claims and counts the Bound ones.
func countBound(ctx context.Context, c kubernetes.Interface, ns string) (int, error) {
	list, err := c.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		if list.Items[i].Status.Phase == v1.ClaimBound {
			n++
		}
	}
	return n, nil
}

// waitVolumes polls (once a second) until want volumes whose name starts
// with prefix are in phase.
func waitVolumes(ctx context.Context, c kubernetes.Interface, prefix string, phase v1.PersistentVolumePhase, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		list, err := c.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return err
		}
		n := 0
		for i := range list.Items {
			pv := &list.Items[i]
			if strings.HasPrefix(pv.Name, prefix) && pv.Status.Phase == phase {
				n++
			}
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d volumes %s* %s after %v", n, want, prefix, phase, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// calibrate measures the API's own write rate with the four writes a
// bind makes (volume spec and status, claim spec and status), from workers
// writers for d, on volumes and claims of its own. The claims are deleted
// afterwards (they stay Terminating when pvc-protection is not running,
// and the binder leaves claims being deleted alone).
func calibrate(ctx context.Context, c kubernetes.Interface, prefix string, workers int, d time.Duration) (writeRate, cpuPerWrite float64, err error) {
	const n = 256
	ns := prefix + "-calibrate"
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return 0, 0, err
	}
	modes := []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
	pvs := make([]*v1.PersistentVolume, n)
	pvcs := make([]*v1.PersistentVolumeClaim, n)
	_, err = parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		pv, err := c.CoreV1().PersistentVolumes().Create(ctx,
			newPV(fmt.Sprintf("%s-calibrate-%04d", prefix, i), gi, "bench-calibrate", modes, v1.PersistentVolumeFilesystem), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx,
			newPVC(ns, fmt.Sprintf("calibrate-%04d", i), gi, "bench-calibrate", modes, v1.PersistentVolumeFilesystem), metav1.CreateOptions{})
		pvs[i], pvcs[i] = pv, pvc
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("calibration: %w", err)
	}
	cpuBefore := selfCPU()
	var writes atomic.Int64
	// Writers stop starting writes at the deadline and finish the ones in
	// flight: cancelling them would count as handler timeouts in the API.
	start := time.Now()
	deadline := start.Add(d)
	_, err = parallel(ctx, workers, workers, func(ctx context.Context, w int) error {
		for k := 0; ; k++ {
			for i := w; i < n; i += workers {
				if time.Now().After(deadline) {
					return nil
				}
				if err := calibrationWrite(ctx, c, k%4, k, &pvs[i], &pvcs[i]); err != nil {
					return fmt.Errorf("calibration write: %w", err)
				}
				writes.Add(1)
			}
		}
	})
	if err != nil {
		return 0, 0, err
	}
	wr := float64(writes.Load())
	writeRate, cpuPerWrite = wr/time.Since(start).Seconds(), (selfCPU()-cpuBefore)/wr
	if err := c.CoreV1().PersistentVolumeClaims(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return 0, 0, fmt.Errorf("calibration cleanup: %w", err)
	}
	return writeRate, cpuPerWrite, nil
}

// calibrationWrite makes write kind (0: volume spec, 1: volume status,
// 2: claim spec, 3: claim status) and keeps the new object.
func calibrationWrite(ctx context.Context, c kubernetes.Interface, kind, round int, pv **v1.PersistentVolume, pvc **v1.PersistentVolumeClaim) error {
	phases := []v1.PersistentVolumePhase{v1.VolumeAvailable, v1.VolumeReleased}
	claimPhases := []v1.PersistentVolumeClaimPhase{v1.ClaimPending, v1.ClaimLost}
	var err error
	switch kind {
	case 0:
		o := (*pv).DeepCopy()
		o.Labels = map[string]string{"round": fmt.Sprint(round)}
		*pv, err = c.CoreV1().PersistentVolumes().Update(ctx, o, metav1.UpdateOptions{})
	case 1:
		o := (*pv).DeepCopy()
		o.Status.Phase = phases[round/4%2]
		*pv, err = c.CoreV1().PersistentVolumes().UpdateStatus(ctx, o, metav1.UpdateOptions{})
	case 2:
		o := (*pvc).DeepCopy()
		o.Annotations = map[string]string{"round": fmt.Sprint(round)}
		*pvc, err = c.CoreV1().PersistentVolumeClaims(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
	case 3:
		o := (*pvc).DeepCopy()
		o.Status.Phase = claimPhases[round/4%2]
		*pvc, err = c.CoreV1().PersistentVolumeClaims(o.Namespace).UpdateStatus(ctx, o, metav1.UpdateOptions{})
	}
	return err
}
