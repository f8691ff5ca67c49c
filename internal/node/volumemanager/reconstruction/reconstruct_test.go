package reconstruction

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
	"volplane/internal/node/volumemanager/cache"
)

func TestReconstruct(t *testing.T) {
	root := t.TempDir()
	store := Store{Root: root}
	ops := fakehost.New()
	ed, _ := emptydir.New(emptydir.Config{})
	vol := &corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	for _, r := range []*Record{
		{Plugin: emptydir.PluginName, VolumeName: "kubernetes.io/empty-dir/a-scratch", OuterName: "scratch", PodUID: "a",
			Dir: "/x/a", HostPath: "/x/a", Volume: vol},
		{Plugin: "example.com/gone", VolumeName: "gone/v", OuterName: "v", PodUID: "a", Dir: "/x/v"},
	} {
		if err := store.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	// A half-written temporary file from a crash is ignored.
	if err := os.WriteFile(filepath.Join(root, "pods/a/volume-meta/.x.json.123.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	mounted := filepath.Join(root, "global/m")
	unmounted := filepath.Join(root, "global/u")
	for _, d := range []string{mounted, unmounted} {
		os.MkdirAll(d, 0o755)
	}
	ops.Mount(context.Background(), "/dev/x", mounted, "ext4", nil)
	for _, d := range []*DeviceRecord{
		{Plugin: emptydir.PluginName, VolumeName: "dev-m", MountPath: mounted},
		{Plugin: emptydir.PluginName, VolumeName: "dev-u", MountPath: unmounted},
	} {
		if err := store.WriteDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	actual := cache.NewActual()
	res, err := Reconstruct(context.Background(), Config{Store: store, Ops: ops, Actual: actual, Plugins: []plugins.Plugin{ed}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Volumes != 1 || res.Devices != 2 || len(res.Unknown) != 1 {
		t.Fatalf("result %+v", res)
	}
	m, ok := actual.Mounted("kubernetes.io/empty-dir/a-scratch", "a")
	if !ok || !m.Uncertain || m.Spec.Volume.EmptyDir == nil || m.HostPath != "/x/a" {
		t.Fatalf("reconstructed %+v", m)
	}
	// A device whose path is a mount point may still be half staged (a
	// crash inside MountDevice after the driver's mount): uncertain, as
	// upstream reconstructs every device, so MountDevice runs again.
	if d, _ := actual.Device("dev-m"); !d.Mounted || !d.Uncertain {
		t.Fatalf("mounted device reconstructed as %+v, want uncertain", d)
	}
	// A device record without a mount at its path (raw block staging, a
	// driver that stages nothing there) may still hold a staged volume:
	// it stays, uncertain, for UnmountDevice or MountDevice to settle.
	if d, _ := actual.Device("dev-u"); !d.Mounted || !d.Uncertain || d.MountPath != unmounted {
		t.Fatalf("unmounted device reconstructed as %+v, want uncertain at %s", d, unmounted)
	}
	if _, err := os.Stat(unmounted); err != nil {
		t.Fatalf("the unmounted device's directory was removed: %v", err)
	}
	if recs, _, _ := store.DeviceRecords(); len(recs) != 2 {
		t.Fatalf("device records after reconstruction: %d, want both kept", len(recs))
	}
	if err := store.Remove(types.UID("a"), emptydir.PluginName, "scratch"); err != nil {
		t.Fatal(err)
	}
	if recs, _, _ := store.PodRecords("a"); len(recs) != 1 {
		t.Fatalf("records after Remove: %d", len(recs))
	}
}

func TestCleanOrphans(t *testing.T) {
	root := t.TempDir()
	store := Store{Root: root}
	ops := fakehost.New()
	for _, d := range []string{"pods/known/x", "pods/held/volumes/v", "pods/free/volumes/v/deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ops.BindMount(context.Background(), "/src", filepath.Join(root, "pods/held/volumes/v"), nil)
	kept, err := CleanOrphans(context.Background(), store, ops, func(uid types.UID) bool { return uid == "known" })
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0].Dir != filepath.Join(root, "pods/held") {
		t.Fatalf("kept %+v", kept)
	}
	for dir, want := range map[string]bool{"known": true, "held": true, "free": false} {
		_, err := os.Stat(filepath.Join(root, "pods", dir))
		if (err == nil) != want {
			t.Errorf("pods/%s exists=%v, want %v", dir, err == nil, want)
		}
	}
}
