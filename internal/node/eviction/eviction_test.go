package eviction

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
)

type fakePods struct {
	pods    []*corev1.Pod
	evicted map[types.UID]string
}

func (f *fakePods) RunningPods() []*corev1.Pod { return f.pods }

func (f *fakePods) Evict(uid types.UID, msg string) bool {
	f.evicted[uid] = msg
	return true
}

func emptyDirVolume(name string, medium corev1.StorageMedium, limit string) corev1.Volume {
	ed := &corev1.EmptyDirVolumeSource{Medium: medium}
	if limit != "" {
		q := resource.MustParse(limit)
		ed.SizeLimit = &q
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}}
}

func TestLimitedEmptyDirs(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		emptyDirVolume("disk-limited", "", "1Mi"),
		emptyDirVolume("disk-unlimited", "", ""),
		emptyDirVolume("memory", corev1.StorageMediumMemory, "1Mi"),
		emptyDirVolume("zero", "", "0"),
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
	}}}
	got := LimitedEmptyDirs(pod)
	if len(got) != 1 || got[0].Name != "disk-limited" {
		t.Fatalf("LimitedEmptyDirs = %v, want only disk-limited", got)
	}
}

func writeFile(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 1 // not sparse
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUsageCountsEachInodeOnceAndNoSymlinkTarget(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), 64<<10)
	writeFile(t, filepath.Join(dir, "sub", "b"), 64<<10)
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(outside, "big"), 1<<20)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	used, err := Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Two 64 KiB files plus directory blocks: well under the 1 MiB the
	// symlink or the hard link would add.
	if used < 128<<10 || used >= 1<<20 {
		t.Fatalf("Usage = %d, want two 64 KiB files and directories", used)
	}
}

func TestCheckEvictsOnlyOverLimitUnquotaed(t *testing.T) {
	root := t.TempDir()
	mk := func(uid, vol, limit string, size int) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid)},
			Spec: corev1.PodSpec{Volumes: []corev1.Volume{emptyDirVolume(vol, "", limit)}}}
		writeFile(t, filepath.Join(plugins.PodVolumeDir(root, p.UID, emptydir.PluginName, vol), "f"), size)
		return p
	}
	over := mk("over", "scratch", "100Ki", 512<<10)
	under := mk("under", "scratch", "1Mi", 64<<10)
	quota := mk("quota", "scratch", "100Ki", 512<<10)
	ops := fakehost.New()
	// The quota'd volume is a mount: its qgroup enforces the limit.
	quotaDir := plugins.PodVolumeDir(root, quota.UID, emptydir.PluginName, "scratch")
	if err := ops.BindMount(t.Context(), "/somewhere", quotaDir, nil); err != nil {
		t.Fatal(err)
	}
	pods := &fakePods{pods: []*corev1.Pod{over, under, quota}, evicted: map[types.UID]string{}}
	cfg := Config{RootDir: root, Pods: pods, Ops: ops}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	check(&cfg)
	want := map[types.UID]string{"over": `Usage of EmptyDir volume "scratch" exceeds the limit "100Ki". `}
	if len(pods.evicted) != 1 || pods.evicted["over"] != want["over"] {
		t.Fatalf("evicted %v, want %v", pods.evicted, want)
	}
}
