package volumemanager

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
	"volplane/internal/node/plugins/hostpath"
	"volplane/internal/node/plugins/image"
	"volplane/internal/node/plugins/local"
	"volplane/internal/node/plugins/nfs"
)

func allPlugins(t *testing.T, imagesDir string) []plugins.Plugin {
	t.Helper()
	ed, err := emptydir.New(emptydir.Config{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.New(image.Config{ImagesDir: imagesDir})
	if err != nil {
		t.Fatal(err)
	}
	return []plugins.Plugin{ed, hostpath.New(), local.New(), nfs.New(), img}
}

func claimAndPV(name, node string, src corev1.PersistentVolumeSource, mode corev1.PersistentVolumeMode, bound bool) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("claim-" + name)},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv-" + name, VolumeMode: &mode},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	if bound {
		claim.Status.Phase = corev1.ClaimBound
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + name},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: src, VolumeMode: &mode,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			ClaimRef: &corev1.ObjectReference{Namespace: "default", Name: name, UID: claim.UID},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	return claim, pv
}

func claimVolume(name, claim string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

// TestLocalFilesystemClaim: the pod waits with upstream's event while its
// claim is pending, then starts by itself; the PV's directory is
// bind-mounted at upstream's path and its data survives teardown.
func TestLocalFilesystemClaim(t *testing.T) {
	root := rootDir(t)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	claim, pv := claimAndPV("data", "node1", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: data}}, corev1.PersistentVolumeFilesystem, false)
	pod := testPod("p", "uid-l", claimVolume("vol", "data"))
	pods := newFakePods(pod)
	h := start(t, root, hostops.New(), pods, allPlugins(t, t.TempDir()), claim, pv)
	// The processing error comes back as upstream's kubelet returns it,
	// at once (the 30 s are a hang guard), and again while it lasts.
	const want = "unmounted volumes=[vol], unattached volumes=[], failed to process volumes=[vol]: error processing PVC default/data: PVC is not bound"
	for _, ms := range []int{30_000, 200} {
		ctx, cancel := contextWithTimeout(t, ms)
		err := h.m.WaitForAttachAndMount(ctx, pod)
		cancel()
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %q", err, want)
		}
	}
	claim.Status.Phase = corev1.ClaimBound
	if _, err := h.client.CoreV1().PersistentVolumeClaims("default").UpdateStatus(context.Background(), claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitMounted(t, pod)
	dir := filepath.Join(root, "pods/uid-l/volumes/kubernetes.io~local-volume/pv-data")
	if got := h.m.PodVolumes(pod.UID)["vol"]; got.HostPath != dir {
		t.Fatalf("PodVolumes = %+v", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "k" {
		t.Fatalf("volume content: %q %v", b, err)
	}
	pods.terminate(pod.UID)
	h.waitUnmounted(t, pod)
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
	if b, err := os.ReadFile(filepath.Join(data, "keep")); err != nil || string(b) != "k" {
		t.Fatalf("data lost: %q %v", b, err)
	}
}

// TestLocalNodeAffinityRechecked: a PV pinned to another node is refused
// at mount time with upstream's event.
func TestLocalNodeAffinityRechecked(t *testing.T) {
	root := rootDir(t)
	claim, pv := claimAndPV("far", "node2", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: t.TempDir()}}, corev1.PersistentVolumeFilesystem, true)
	pod := testPod("p", "uid-a", claimVolume("vol", "far"))
	h := start(t, root, hostops.New(), newFakePods(pod), allPlugins(t, t.TempDir()), claim, pv)
	ev := h.waitEvent(t, "FailedMount")
	if want := `Warning FailedMount MountVolume.NodeAffinity check failed for volume "pv-far" : no matching NodeSelectorTerms`; ev != want {
		t.Fatalf("event %q, want %q", ev, want)
	}
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("mounted: %v", left)
	}
}

// TestLocalBlockClaim maps a loop device as upstream lays block volumes
// out.
func TestLocalBlockClaim(t *testing.T) {
	root := rootDir(t)
	img := filepath.Join(root, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 20)
	f.Close()
	dev, err := hostops.New().LoopAttach(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	claim, pv := claimAndPV("blk", "node1", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dev}}, corev1.PersistentVolumeBlock, true)
	pod := testPod("p", "uid-b")
	pod.Spec.Volumes = []corev1.Volume{claimVolume("raw", "blk")}
	pod.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "raw", DevicePath: "/dev/xvda"}}
	pods := newFakePods(pod)
	h := start(t, root, hostops.New(), pods, allPlugins(t, t.TempDir()), claim, pv)
	h.waitMounted(t, pod)
	link := filepath.Join(root, "pods/uid-b/volumeDevices/kubernetes.io~local-volume/pv-blk")
	global := filepath.Join(root, "plugins/kubernetes.io~local-volume/volumeDevices/pv-blk/uid-b")
	if got := h.m.PodVolumes(pod.UID)["raw"]; got.DevicePath != link || got.HostPath != "" {
		t.Fatalf("PodVolumes = %+v", got)
	}
	if target, err := os.Readlink(link); err != nil || target != dev {
		t.Fatalf("link -> %q (%v), want %s", target, err, dev)
	}
	if mounted, _ := hostops.New().IsMountPoint(global); !mounted {
		t.Fatalf("%s is not a bind mount of the device", global)
	}
	// A filesystem mount of a block claim is refused with upstream's words.
	pod2 := testPod("p2", "uid-b2", claimVolume("raw", "blk"))
	pods.add(pod2)
	ctx, cancel := contextWithTimeout(t, 30_000)
	err = h.m.WaitForAttachAndMount(ctx, pod2)
	cancel()
	if err == nil || !strings.HasSuffix(err.Error(), "failed to process volumes=[raw]: volume raw has volumeMode Block, but is specified in volumeMounts") {
		t.Fatalf("error = %v", err)
	}

	pods.terminate(pod.UID)
	pods.terminate(pod2.UID)
	h.waitUnmounted(t, pod)
	for _, p := range []string{link, global} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if left := hostopstest.MountsUnder(t, filepath.Join(root, "plugins")); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
}

// TestNFSErrorPath: this kernel has no NFS client, so the mount fails;
// the pod waits with the event and nothing is left mounted.
func TestNFSErrorPath(t *testing.T) {
	root := rootDir(t)
	pod := testPod("p", "uid-n", corev1.Volume{Name: "share", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{
		Server: "127.0.0.1", Path: "/exports/x", ReadOnly: true}}})
	h := start(t, root, hostops.New(), newFakePods(pod), allPlugins(t, t.TempDir()))
	ev := h.waitEvent(t, "FailedMount")
	if !strings.HasPrefix(ev, `Warning FailedMount MountVolume.SetUp failed for volume "share" : mount failed: mount -t nfs -o ro 127.0.0.1:/exports/x `) {
		t.Fatalf("event %q", ev)
	}
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
}

// TestImageVolume mounts an image's rootfs read-only, and refuses an
// image that has none.
func TestImageVolume(t *testing.T) {
	root := rootDir(t)
	images := t.TempDir()
	rootfs := filepath.Join(images, "registry.example_app_v1/rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/app.conf"), []byte("conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := testPod("p", "uid-i",
		corev1.Volume{Name: "app", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "registry.example/app:v1"}}})
	missing := testPod("q", "uid-j",
		corev1.Volume{Name: "none", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "nothing:here"}}})
	pods := newFakePods(pod, missing)
	h := start(t, root, hostops.New(), pods, allPlugins(t, images))
	h.waitMounted(t, pod)
	v := h.m.PodVolumes(pod.UID)["app"]
	if !v.ReadOnly {
		t.Fatal("image volume not read-only")
	}
	if b, err := os.ReadFile(filepath.Join(v.HostPath, "etc/app.conf")); err != nil || string(b) != "conf" {
		t.Fatalf("content %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(v.HostPath, "x"), nil, 0o644); err == nil {
		t.Fatal("wrote into a read-only image volume")
	}
	h.waitEvent(t, `MountVolume.SetUp failed for volume "none" : image "nothing:here" has no rootfs`)
	pods.terminate(pod.UID)
	pods.terminate(missing.UID)
	h.waitUnmounted(t, pod)
	h.waitUnmounted(t, missing)
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
}

// TestGenericEphemeralVolume: the claim <pod>-<volume> the pod owns is
// used like any claim.
func TestGenericEphemeralVolume(t *testing.T) {
	root := rootDir(t)
	pod := testPod("web", "uid-e", corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}})
	claim, pv := claimAndPV("web-scratch", "node1", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: t.TempDir()}}, corev1.PersistentVolumeFilesystem, true)
	claim.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "web", UID: pod.UID, Controller: ptrTrue()}}
	pods := newFakePods(pod)
	h := start(t, root, hostops.New(), pods, allPlugins(t, t.TempDir()), claim, pv)
	h.waitMounted(t, pod)
	if got := h.m.PodVolumes(pod.UID)["scratch"].HostPath; got != filepath.Join(root, "pods/uid-e/volumes/kubernetes.io~local-volume/pv-web-scratch") {
		t.Fatalf("HostPath %s", got)
	}
	pods.terminate(pod.UID)
	h.waitUnmounted(t, pod)
	if left := hostopstest.MountsUnder(t, root); len(left) != 0 {
		t.Fatalf("left mounted: %v", left)
	}
}

func ptrTrue() *bool { b := true; return &b }
