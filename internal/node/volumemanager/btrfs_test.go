package volumemanager

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

// TestEmptyDirSizeLimitQuota: with a btrfs directory, a disk emptyDir's
// sizeLimit stops a writer at the limit, and teardown deletes the
// subvolume.
func TestEmptyDirSizeLimitQuota(t *testing.T) {
	root := rootDir(t)
	pool := hostopstest.LoopFS(t, "btrfs", 256<<20)
	btrfsDir := filepath.Join(pool, "emptydirs")
	pod := testPod("p", "uid-q", corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		SizeLimit: ptr.To(resource.MustParse("8Mi"))}}})
	pods := newFakePods(pod)
	h := start(t, root, hostops.New(), pods, basicPlugins(t, btrfsDir))
	h.waitMounted(t, pod)
	dir := h.m.PodVolumes(pod.UID)["cache"].HostPath
	written, err := hostopstest.Fill(filepath.Join(dir, "big"), 64<<20)
	if !errors.Is(err, unix.EDQUOT) {
		t.Fatalf("writer stopped by %v after %d bytes, want EDQUOT", err, written)
	}
	if written > 9<<20 || written < 4<<20 {
		t.Fatalf("writer stopped after %d bytes, want about 8 MiB", written)
	}
	sub := filepath.Join(btrfsDir, "uid-q-cache")
	if _, err := os.Stat(filepath.Join(sub, "big")); err != nil {
		t.Fatalf("data not in the subvolume: %v", err)
	}
	pods.terminate(pod.UID)
	h.waitUnmounted(t, pod)
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Fatalf("subvolume left after teardown: %v", err)
	}
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
}
