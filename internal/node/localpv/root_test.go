package localpv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

// tmpfsDir makes a fresh directory whose mounts are all undone when the
// test ends, pass or fail.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	hostopstest.RequireRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	return dir
}

func mountTmpfs(t *testing.T, path, size string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", path, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", path, err)
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Lstat(path); return err == nil }

func TestScrub(t *testing.T) {
	dir := tmpfsDir(t)
	outside := filepath.Join(dir, "outside")
	writeFile(t, filepath.Join(outside, "keep"))
	vol := filepath.Join(dir, "vol")
	mountTmpfs(t, vol, "16m")
	writeFile(t, filepath.Join(vol, "a"))
	writeFile(t, filepath.Join(vol, "d1", "d2", "b"))
	if err := os.Symlink(outside, filepath.Join(vol, "link-dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "keep"), filepath.Join(vol, "d1", "link-file")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(vol, "d1", "d2"), 0); err != nil {
		t.Fatal(err)
	}

	// A stopping provisioner stops scrubbing; the next scrub goes on.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Scrub(cancelled, vol); !errors.Is(err, context.Canceled) || !exists(filepath.Join(vol, "a")) {
		t.Fatalf("scrub after the stop: %v", err)
	}
	if err := Scrub(context.Background(), vol); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(vol); len(names) != 0 {
		t.Errorf("left in the volume: %v", names)
	}
	if !exists(filepath.Join(outside, "keep")) {
		t.Error("a symlink was followed: the file outside is gone")
	}
	if ok, _ := hostops.New().IsMountPoint(vol); !ok {
		t.Error("the volume is no longer a mount point")
	}

	// A mount inside the volume is kept, with the directories leading to
	// it; everything else goes.
	writeFile(t, filepath.Join(vol, "x"))
	mountTmpfs(t, filepath.Join(vol, "sub", "inner"), "1m")
	writeFile(t, filepath.Join(vol, "sub", "inner", "kept"))
	writeFile(t, filepath.Join(vol, "sub", "gone"))
	err := Scrub(context.Background(), vol)
	if !errors.Is(err, ErrOtherFilesystem) {
		t.Fatalf("scrub across a mount: %v, want ErrOtherFilesystem", err)
	}
	if exists(filepath.Join(vol, "x")) || exists(filepath.Join(vol, "sub", "gone")) || !exists(filepath.Join(vol, "sub", "inner", "kept")) {
		t.Error("scrub across a mount removed the wrong things")
	}

	// A directory that is not a mount point is refused whole.
	writeFile(t, filepath.Join(outside, "keep2"))
	if err := Scrub(context.Background(), outside); !errors.Is(err, ErrNotMountPoint) {
		t.Fatalf("scrub of a plain directory: %v, want ErrNotMountPoint", err)
	}
	if !exists(filepath.Join(outside, "keep2")) {
		t.Error("a plain directory was scrubbed")
	}
}

// waitFor polls cond until it holds; the bound only keeps a broken run
// from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getPV(cs kubernetes.Interface, name string) *corev1.PersistentVolume {
	pv, err := cs.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return pv
}

func hasEvent(cs kubernetes.Interface, pv, reason string) bool {
	evs, err := cs.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == pv && e.Reason == reason {
			return true
		}
	}
	return false
}

// release makes pv Released, as the PV controller does once its claim
// is deleted.
func release(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	pv := getPV(cs, name)
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "ns", Name: "claim-" + name, UID: "u"}
	pv, err := cs.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Status.Phase = corev1.VolumeReleased
	if _, err := cs.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestProvisioner(t *testing.T) {
	dir := tmpfsDir(t)
	disc := filepath.Join(dir, "disks")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-storage"}, Provisioner: "kubernetes.io/no-provisioner"}
	cs := fake.NewClientset(node, class)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Run(ctx, Config{NodeName: "n1", DiscoveryDir: disc, Client: cs, Host: hostops.New(), Rescan: 50 * time.Millisecond}, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}

	// Discovery: mount points become PVs; a plain directory does not.
	for _, v := range []string{"vol1", "vol2", "vol3", "vol4"} {
		mountTmpfs(t, filepath.Join(disc, v), "64m")
	}
	if err := os.Mkdir(filepath.Join(disc, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := func(v string) string { return PVName(v, "n1", "local-storage") }
	for _, v := range []string{"vol1", "vol2", "vol3", "vol4"} {
		waitFor(t, "the PV of "+v, func() bool { return getPV(cs, name(v)) != nil })
	}
	pv := getPV(cs, name("vol1"))
	if pv.Spec.Local.Path != filepath.Join(disc, "vol1") || pv.Spec.Capacity.Storage().String() != "64Mi" ||
		pv.Annotations["pv.kubernetes.io/provisioned-by"] != "local-volume-provisioner-n1-node-uid" {
		t.Errorf("PV %+v", pv)
	}
	if getPV(cs, name("plain")) != nil {
		t.Error("a directory that is not a mount point became a PV")
	}

	// Release while a pod still uses the claim: nothing is removed.
	data := filepath.Join(disc, "vol1", "dir", "file")
	writeFile(t, data)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v",
		VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim-" + name("vol1")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	release(t, cs, name("vol1"))
	waitFor(t, "the VolumeInUse event", func() bool { return hasEvent(cs, name("vol1"), ReasonInUse) })
	if !exists(data) {
		t.Fatal("a volume in use was scrubbed")
	}

	// Once the pod is gone: scrubbed, deleted, made again as new.
	if err := cs.CoreV1().Pods("ns").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the VolumeDeleted event", func() bool { return hasEvent(cs, name("vol1"), ReasonDeleted) })
	if exists(data) || exists(filepath.Dir(data)) {
		t.Error("the released volume was not scrubbed")
	}
	if !hasEvent(cs, name("vol1"), ReasonCleanup) {
		t.Error("no VolumeCleanup event")
	}
	waitFor(t, "the PV made again", func() bool { pv := getPV(cs, name("vol1")); return pv != nil && pv.Spec.ClaimRef == nil })

	// Released but still bind-mounted where a pod's volume would be:
	// kept until that mount goes.
	kept := filepath.Join(disc, "vol4", "file")
	writeFile(t, kept)
	podDir := filepath.Join(dir, "pods", "volume")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(filepath.Join(disc, "vol4"), podDir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	release(t, cs, name("vol4"))
	waitFor(t, "the VolumeInUse event of the bind-mounted volume", func() bool { return hasEvent(cs, name("vol4"), ReasonInUse) })
	if !exists(kept) {
		t.Fatal("a volume still mounted elsewhere was scrubbed")
	}
	if err := unix.Unmount(podDir, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the VolumeDeleted event of vol4", func() bool { return hasEvent(cs, name("vol4"), ReasonDeleted) })
	if exists(kept) {
		t.Error("vol4 was not scrubbed once unmounted elsewhere")
	}

	// Vanished mount points: the unbound PV goes, the bound one stays
	// with a warning.
	bound := getPV(cs, name("vol3"))
	bound.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "c3", UID: "u3"}
	if _, err := cs.CoreV1().PersistentVolumes().Update(ctx, bound, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"vol2", "vol3"} {
		if err := unix.Unmount(filepath.Join(disc, v), 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the unbound PV deleted", func() bool {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, name("vol2"), metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	waitFor(t, "the VolumeMissing event", func() bool { return hasEvent(cs, name("vol3"), ReasonMissing) })
	if getPV(cs, name("vol3")) == nil {
		t.Error("a bound PV whose mount point is gone was deleted")
	}
}
