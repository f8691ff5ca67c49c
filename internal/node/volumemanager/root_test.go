package volumemanager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
	"volplane/internal/node/plugins/hostpath"
)

// rootDir is a fresh agent root whose mounts are all removed when the
// test ends, pass or fail.
func rootDir(t *testing.T) string {
	t.Helper()
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	return dir
}

func basicPlugins(t *testing.T, btrfsDir string) []plugins.Plugin {
	t.Helper()
	ps, err := newPlugins(btrfsDir)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func newPlugins(btrfsDir string) ([]plugins.Plugin, error) {
	ed, err := emptydir.New(emptydir.Config{BtrfsDir: btrfsDir})
	if err != nil {
		return nil, err
	}
	return []plugins.Plugin{ed, hostpath.New()}, nil
}

// TestEmptyDirAndHostPathEndToEnd runs the whole path on real mounts: a
// pod with a disk emptyDir, a memory emptyDir and a hostPath gets them,
// a subPath into one, and loses them all on teardown.
func TestEmptyDirAndHostPathEndToEnd(t *testing.T) {
	root := rootDir(t)
	hostDir := filepath.Join(t.TempDir(), "host", "data")
	pod := testPod("p1", "uid-1",
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("4Mi"))}}},
		corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: hostDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
	)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](1234)}
	pods := newFakePods(pod)
	h := start(t, root, hostops.New(), pods, basicPlugins(t, ""))
	h.waitMounted(t, pod)

	vols := h.m.PodVolumes(pod.UID)
	scratch := filepath.Join(root, "pods/uid-1/volumes/kubernetes.io~empty-dir/scratch")
	mem := filepath.Join(root, "pods/uid-1/volumes/kubernetes.io~empty-dir/mem")
	if vols["scratch"].HostPath != scratch || vols["mem"].HostPath != mem || vols["host"].HostPath != hostDir {
		t.Fatalf("PodVolumes = %+v", vols)
	}
	if fi, err := os.Stat(hostDir); err != nil || !fi.IsDir() {
		t.Fatalf("DirectoryOrCreate did not create %s: %v", hostDir, err)
	}
	if got := hostopstest.FSTypeAt(t, mem); got != "tmpfs" {
		t.Fatalf("memory emptyDir fstype = %q, want tmpfs", got)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mem, &st); err != nil || int64(st.Blocks)*st.Bsize != 4<<20 {
		t.Fatalf("tmpfs size = %d (%v), want 4Mi", int64(st.Blocks)*st.Bsize, err)
	}
	var sst unix.Stat_t
	if err := unix.Stat(scratch, &sst); err != nil || sst.Gid != 1234 || sst.Mode&unix.S_ISGID == 0 {
		t.Fatalf("fsGroup not applied to %s: gid %d mode %o (%v)", scratch, sst.Gid, sst.Mode, err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A subPath comes back as a mount of the directory inside the volume.
	sp, err := h.m.PrepareSubPath(t.Context(), SubPathRequest{Pod: pod, Container: "c", MountIndex: 0, Volume: "scratch", SubPath: "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "pods/uid-1/volume-subpaths/scratch/c/0"); sp != want {
		t.Fatalf("subpath target %s, want %s", sp, want)
	}
	if err := os.WriteFile(filepath.Join(sp, "g"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(scratch, "a/b/g")); err != nil || string(b) != "y" {
		t.Fatalf("subpath write not in volume: %q %v", b, err)
	}
	if again, err := h.m.PrepareSubPath(t.Context(), SubPathRequest{Pod: pod, Container: "c", MountIndex: 0, Volume: "scratch", SubPath: "a/b"}); err != nil || again != sp {
		t.Fatalf("second PrepareSubPath = %s, %v", again, err)
	}
	if n := len(hostopstest.MountsUnder(t, sp)); n != 1 {
		t.Fatalf("subpath mounted %d times", n)
	}

	pods.terminate(pod.UID)
	h.waitUnmounted(t, pod)
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("mounts left after teardown: %v", left)
	}
	for _, p := range []string{scratch, mem, filepath.Join(root, "pods/uid-1/volume-subpaths/scratch"), filepath.Join(root, "pods/uid-1/volume-meta")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			if p == filepath.Join(root, "pods/uid-1/volume-meta") {
				if entries, _ := os.ReadDir(p); len(entries) == 0 {
					continue
				}
			}
			t.Errorf("%s still exists after teardown (%v)", p, err)
		}
	}
	if _, err := os.Stat(hostDir); err != nil {
		t.Errorf("hostPath directory was touched by teardown: %v", err)
	}
}

// TestHostPathTypeMismatch waits with upstream's event and mounts
// nothing.
func TestHostPathTypeMismatch(t *testing.T) {
	root := rootDir(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pod := testPod("p2", "uid-2", corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: file, Type: ptr.To(corev1.HostPathDirectory)}}})
	h := start(t, root, hostops.New(), newFakePods(pod), basicPlugins(t, ""))
	ev := h.waitEvent(t, "FailedMount")
	want := `Warning FailedMount MountVolume.SetUp failed for volume "h" : hostPath type check failed: ` + file + ` is not a directory, it's a File`
	if ev != want {
		t.Fatalf("event\n %q\nwant\n %q", ev, want)
	}
	ctx, cancel := contextWithTimeout(t, 300)
	defer cancel()
	err := h.m.WaitForAttachAndMount(ctx, pod)
	if err == nil || !strings.HasPrefix(err.Error(), "unmounted volumes=[h], unattached volumes=[], failed to process volumes=[]: context deadline exceeded") {
		t.Fatalf("WaitForAttachAndMount error = %v", err)
	}
}

// TestOrphanWithMountIsKept: a pod directory the agent no longer knows
// is removed only when nothing is mounted beneath it (kubernetes#72257).
func TestOrphanWithMountIsKept(t *testing.T) {
	root := rootDir(t)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "precious"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(root, "pods/orphan-held/volumes/kubernetes.io~csi/pv1/mount")
	free := filepath.Join(root, "pods/orphan-free/volumes/kubernetes.io~empty-dir/x")
	for _, d := range []string{held, free} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(free, "junk"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := hostops.New().BindMount(t.Context(), data, held, nil); err != nil {
		t.Fatal(err)
	}
	h := start(t, root, hostops.New(), newFakePods(), basicPlugins(t, ""))
	waitFor(t, h.m.populator.Ready)
	kept, err := h.m.CleanOrphans(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0].Dir != filepath.Join(root, "pods/orphan-held") || len(kept[0].Mounts) != 1 {
		t.Fatalf("kept = %+v", kept)
	}
	if b, err := os.ReadFile(filepath.Join(held, "precious")); err != nil || string(b) != "keep" {
		t.Fatalf("data under the mount was touched: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "pods/orphan-free")); !os.IsNotExist(err) {
		t.Fatalf("orphan without mounts not removed: %v", err)
	}
	if err := hostops.New().Unmount(t.Context(), held); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "precious")); err != nil || string(b) != "keep" {
		t.Fatalf("data lost: %q %v", b, err)
	}
}
