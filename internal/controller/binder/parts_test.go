package binder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/volumematch"
)

func TestBatcherSettleWindow(t *testing.T) {
	b := newBatcher(time.Second)
	t0 := time.Unix(1000, 0)
	settle, max := 100*time.Millisecond, time.Second
	if ready, wait := b.due(t0, settle, max, 30*time.Second); ready || wait >= 0 {
		t.Fatalf("empty batcher: ready=%v wait=%v, want not ready and no wait", ready, wait)
	}
	b.addClaim("ns/a", volumematch.Group{}, t0)
	if ready, wait := b.due(t0.Add(50*time.Millisecond), settle, max, 30*time.Second); ready || wait != 50*time.Millisecond {
		t.Fatalf("50ms after the only claim: ready=%v wait=%v, want 50ms more", ready, wait)
	}
	// Arrivals keep the window open...
	for i := 1; i <= 15; i++ {
		b.addClaim("ns/b", volumematch.Group{}, t0.Add(time.Duration(i)*80*time.Millisecond))
		if ready, _ := b.due(t0.Add(time.Duration(i)*80*time.Millisecond+50*time.Millisecond), settle, max, 30*time.Second); ready && i*80+50 < 1000 {
			t.Fatalf("ready %dms into a burst that keeps arriving", i*80+50)
		}
	}
	// ...but not past the maximum delay.
	if ready, _ := b.due(t0.Add(max), settle, max, 30*time.Second); !ready {
		t.Fatal("not ready after the maximum settle delay")
	}
	keys := b.take(t0.Add(max), 30*time.Second)
	if len(keys) != 2 || keys[0] != "ns/a" || keys[1] != "ns/b" {
		t.Fatalf("batch %v, want [ns/a ns/b]", keys)
	}
	if b.hasWork() {
		t.Fatal("work left after take")
	}
}

func TestBatcherWaitingClaimsWakeOnArrival(t *testing.T) {
	b := newBatcher(time.Second)
	now := time.Unix(0, 0)
	g := volumematch.Group{Class: "gold", Mode: v1.PersistentVolumeFilesystem}
	other := volumematch.Group{Class: "silver", Mode: v1.PersistentVolumeFilesystem}
	b.decide("ns/a", "")
	b.wait("ns/a", g)
	b.done("ns/a", now)
	b.volumeArrived(other, now)
	if b.hasWork() {
		t.Fatal("a volume of another group woke a waiting claim")
	}
	b.volumeArrived(g, now)
	if keys := b.take(now, 30*time.Second); len(keys) != 1 || keys[0] != "ns/a" {
		t.Fatalf("batch %v, want the waiting claim", keys)
	}
	// A claim due while its decision is in flight joins the batch after.
	b.decide("ns/c", "")
	b.addClaim("ns/c", volumematch.Group{}, now)
	if keys := b.take(now, 30*time.Second); len(keys) != 0 {
		t.Fatalf("batch %v while the decision is in flight", keys)
	}
	b.done("ns/c", now)
	if keys := b.take(now, 30*time.Second); len(keys) != 1 || keys[0] != "ns/c" {
		t.Fatalf("batch %v after the decision, want ns/c", keys)
	}
}

func TestOperationsOneAtATimeWithBackoff(t *testing.T) {
	o := newOperations(time.Second, 4*time.Second, false)
	now := time.Unix(0, 0)
	o.now = func() time.Time { return now }
	release := make(chan struct{})
	var retries []time.Duration
	retried := make(chan struct{}, 10)
	retry := func(d time.Duration) { retries = append(retries, d); retried <- struct{}{} }
	fail := func(context.Context) error { <-release; return errBoom }
	if !o.Run(context.Background(), "k", fail, retry) {
		t.Fatal("first run refused")
	}
	if o.Run(context.Background(), "k", fail, retry) {
		t.Fatal("second run of a running key started")
	}
	close(release)
	<-retried
	if o.Run(context.Background(), "k", fail, retry) {
		t.Fatal("run during backoff started")
	}
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second} {
		now = now.Add(10 * time.Second)
		if !o.Run(context.Background(), "k", fail, retry) {
			t.Fatal("run after backoff refused")
		}
		<-retried
		if got := retries[len(retries)-1]; got != want {
			t.Fatalf("backoff %v, want %v (all: %v)", got, want, retries)
		}
	}
	now = now.Add(10 * time.Second)
	o.Run(context.Background(), "k", func(context.Context) error { return nil }, retry)
	o.Wait()
	o.Run(context.Background(), "k", fail, retry)
	<-retried
	if got := retries[len(retries)-1]; got != time.Second {
		t.Fatalf("backoff after a success %v, want it reset to 1s", got)
	}
	o.Wait()
}

func TestHostPathProvisioner(t *testing.T) {
	dir := t.TempDir()
	p := NewHostPathProvisioner(dir)
	claim := newPVC("c1", "2Gi", pvcModes(rwo, rox))
	pv, err := p.Provision(context.Background(), ProvisionRequest{PVName: "pvc-1", Claim: claim})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pvc-1")
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != path {
		t.Fatalf("volume source %+v, want hostPath %s", pv.Spec.PersistentVolumeSource, path)
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() || st.Mode().Perm() != 0o777 {
		t.Fatalf("directory %s: %v %v", path, st, err)
	}
	if volumematch.Capacity(pv) != volumematch.Request(claim) || len(pv.Spec.AccessModes) != 2 {
		t.Fatalf("capacity %d modes %v", volumematch.Capacity(pv), pv.Spec.AccessModes)
	}
	// Idempotent by name.
	if _, err := p.Provision(context.Background(), ProvisionRequest{PVName: "pvc-1", Claim: claim}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pv.Name = "pvc-1"
	if !p.CanDelete(pv) {
		t.Fatal("cannot delete its own volume")
	}
	if err := p.Delete(context.Background(), pv); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory left after delete: %v", err)
	}
	if err := p.Delete(context.Background(), pv); err != nil {
		t.Fatalf("deleting a deleted volume: %v", err)
	}
	outside := newPV("x", "1Gi")
	outside.Spec.HostPath.Path = filepath.Dir(dir)
	if p.CanDelete(outside) || p.Delete(context.Background(), outside) == nil {
		t.Fatal("would delete outside its directory")
	}
	if _, err := os.Stat(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Provision(context.Background(), ProvisionRequest{PVName: "b", Claim: newPVC("c2", "1Gi", pvcBlock())}); err == nil {
		t.Fatal("provisioned a Block volume")
	}
}

func TestPodRecycler(t *testing.T) {
	for _, tc := range []struct {
		name    string
		phase   v1.PodPhase
		wantErr string
	}{
		{"succeeded", v1.PodSucceeded, ""},
		{"failed", v1.PodFailed, "failed to recycle volume: scrub failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			r := NewPodRecycler(client, RecyclerPodConfig{Namespace: "recyclers", PollInterval: 5 * time.Millisecond})
			pv := newPV("pv-1", "1Gi")
			pv.UID = "uid-pv-1"
			var (
				mu     sync.Mutex
				events []string
			)
			errc := make(chan error, 1)
			go func() {
				errc <- r.Recycle(context.Background(), pv, func(_, m string) {
					mu.Lock()
					defer mu.Unlock()
					events = append(events, m)
				})
			}()
			pods := client.CoreV1().Pods("recyclers")
			var pod *v1.Pod
			err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				p, err := pods.Get(ctx, "recycler-for-pv-1", metav1.GetOptions{})
				pod = p
				return err == nil, nil
			})
			if err != nil {
				t.Fatal("no recycler pod")
			}
			if got := pod.Spec.Volumes[0].HostPath; got == nil || got.Path != "/data/pv-1" {
				t.Fatalf("recycler pod volume %+v", pod.Spec.Volumes[0])
			}
			if c := pod.Spec.Containers[0]; c.VolumeMounts[0].MountPath != "/scrub" || !strings.Contains(strings.Join(c.Args, " "), "find /scrub -mindepth 1 -delete") {
				t.Fatalf("recycler container %+v", c)
			}
			// The pod's events reach the volume, and nothing else does
			// (upstream's recycler client forwards the pod's events alone).
			if _, err := client.CoreV1().Events("recyclers").Create(context.Background(), &v1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "e1", UID: "uid-e1"},
				InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "recyclers", Name: pod.Name, UID: pod.UID},
				Type:           v1.EventTypeNormal, Reason: "Started", Message: "Container started",
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			err = wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				return len(events) > 0, nil
			})
			if err != nil {
				t.Fatal("the pod's event was not forwarded")
			}
			pod.Status.Phase = tc.phase
			pod.Status.Message = "scrub failed"
			if _, err := pods.UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			err = <-errc
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("Recycle = %v, want %q", err, tc.wantErr)
			}
			if _, err := pods.Get(context.Background(), "recycler-for-pv-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("recycler pod left behind: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"Container started"}; !slices.Equal(events, want) {
				t.Fatalf("recycler events %q, want %q", events, want)
			}
		})
	}
	csi := newPV("pv-csi", "1Gi")
	csi.Spec.HostPath = nil
	csi.Spec.CSI = &v1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h"}
	err := NewPodRecycler(fake.NewClientset(), RecyclerPodConfig{}).Recycle(context.Background(), csi, func(string, string) {})
	if !errors.Is(err, ErrNotRecyclable) {
		t.Fatalf("recycling a CSI volume: %v, want ErrNotRecyclable", err)
	}
}

// TestSkipsBatch: a claim for which a batch could decide nothing goes
// straight to its no-volume path; every other unbound claim waits for a
// batch.
func TestSkipsBatch(t *testing.T) {
	const ext = "example.com/ext"
	tests := []struct {
		name    string
		classes []*storagev1.StorageClass
		pvs     []*v1.PersistentVolume
		claim   *v1.PersistentVolumeClaim
		// volumeNow: a volume of the claim's group arrives just before it.
		volumeNow  bool
		noDynamic  bool
		skip, wait bool
	}{
		{name: "provisioning class, no volume", classes: []*storagev1.StorageClass{newClass("fast", ext, immediate)},
			claim: newPVC("c", "1Gi", pvcClass("fast")), skip: true, wait: true},
		{name: "provisioning class, only a smaller volume", classes: []*storagev1.StorageClass{newClass("fast", ext, immediate)},
			pvs: []*v1.PersistentVolume{newPV("small", "1Mi", pvClass("fast"))}, claim: newPVC("c", "1Gi", pvcClass("fast")), skip: true, wait: true},
		{name: "WaitForFirstConsumer", classes: []*storagev1.StorageClass{newClass("local", "kubernetes.io/no-provisioner", wffc)},
			pvs: []*v1.PersistentVolume{newPV("pv", "1Gi", pvClass("local"))}, claim: newPVC("c", "1Gi", pvcClass("local")), skip: true},
		{name: "provisioning class, a volume fits", classes: []*storagev1.StorageClass{newClass("fast", ext, immediate)},
			pvs: []*v1.PersistentVolume{newPV("big", "2Gi", pvClass("fast"))}, claim: newPVC("c", "1Gi", pvcClass("fast"))},
		{name: "provisioning class, volumes arriving", classes: []*storagev1.StorageClass{newClass("fast", ext, immediate)},
			claim: newPVC("c", "1Gi", pvcClass("fast")), volumeNow: true},
		{name: "provisioning off", classes: []*storagev1.StorageClass{newClass("fast", ext, immediate)},
			claim: newPVC("c", "1Gi", pvcClass("fast")), noDynamic: true},
		{name: "class that cannot provision", classes: []*storagev1.StorageClass{newClass("static", "kubernetes.io/no-provisioner", immediate)},
			claim: newPVC("c", "1Gi", pvcClass("static"))},
		{name: "no class", claim: newPVC("c", "1Gi")},
		{name: "missing class", claim: newPVC("c", "1Gi", pvcClass("gone"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI()
			for _, pv := range tt.pvs {
				api.add(pv)
			}
			api.add(tt.claim)
			h := newHarness(t, api, setup{classes: tt.classes, cfg: Config{DisableDynamicProvisioning: tt.noDynamic}})
			h.start()
			// The volumes' own arrival is long past.
			h.clock = h.clock.Add(time.Hour)
			g := volumematch.ClaimGroup(tt.claim)
			if tt.volumeNow {
				h.ctrl.batcher.volumeArrived(g, h.clock)
			}
			key := claimKey(tt.claim)
			if err := h.ctrl.syncUnboundClaim(h.ctx, key); err != nil {
				t.Fatal(err)
			}
			volume, decided := h.ctrl.batcher.decision(key)
			_, waiting := h.ctrl.batcher.waitingIn[key]
			if decided != tt.skip || h.ctrl.batcher.hasWork() == tt.skip {
				t.Fatalf("decided at once %v (volume %q), batch pending %v; want skip %v", decided, volume, h.ctrl.batcher.hasWork(), tt.skip)
			}
			if tt.skip && volume != "" {
				t.Errorf("skipped the batch with volume %q", volume)
			}
			if waiting != tt.wait {
				t.Errorf("waiting in its group %v, want %v", waiting, tt.wait)
			}
			if tt.skip && h.ctrl.bindQueue.Len() != 1 {
				t.Errorf("bind queue holds %d, want the claim", h.ctrl.bindQueue.Len())
			}
		})
	}
}
