package apivolume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/atomicwriter"
)

func TestNames(t *testing.T) {
	b := &Base{PluginName: "kubernetes.io/secret"}
	pod := &corev1.Pod{}
	pod.UID = "0b1c-22"
	name, err := b.VolumeName(&plugins.Spec{Name: "creds"}, pod)
	if err != nil || name != "kubernetes.io/secret/0b1c-22-creds" {
		t.Errorf("VolumeName = %q, %v", name, err)
	}
	for _, tc := range []struct{ dir, want string }{
		{"/var/lib/volplane/pods/0b1c-22/volumes/kubernetes.io~secret/creds", "kubernetes.io/secret/0b1c-22-creds"},
		{"/r/pods/u/volumes/kubernetes.io~secret/creds/", "kubernetes.io/secret/u-creds"},
		{"/r/pods/u/volumes/kubernetes.io~configmap/creds", ""},
		{"/r/pods/u/volume-subpaths/kubernetes.io~secret/creds", ""},
		{"/kubernetes.io~secret/creds", ""},
	} {
		got, err := b.NameFromDir(tc.dir)
		if tc.want == "" && err == nil || tc.want != "" && got != tc.want {
			t.Errorf("NameFromDir(%s) = %q, %v; want %q", tc.dir, got, err, tc.want)
		}
	}
}

func TestTearDownNeverRemovesThroughAMount(t *testing.T) {
	root := t.TempDir()
	host := fakehost.New()
	b := &Base{PluginName: "kubernetes.io/configmap"}
	if err := b.InitBase(&plugins.Host{RootDir: root, Ops: host}); err != nil {
		t.Fatal(err)
	}
	var released []string
	b.Release = func(v string) { released = append(released, v) }
	dir := plugins.PodVolumeDir(root, types.UID("u1"), b.PluginName, "conf")
	pod := &corev1.Pod{}
	pod.UID = "u1"
	args := plugins.SetUpArgs{Spec: &plugins.Spec{Name: "conf"}, Pod: pod, Dir: dir}
	if err := b.Write(context.Background(), args, false, atomicwriter.Payload{"k": {Data: []byte("v"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(dir, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := host.Mount(context.Background(), "tmpfs", nested, "tmpfs", nil); err != nil {
		t.Fatal(err)
	}
	err := b.TearDown(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "still mounted") {
		t.Fatalf("TearDown with a mount beneath = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); err != nil {
		t.Errorf("TearDown removed files while a mount was beneath: %v", err)
	}
	if len(released) != 0 {
		t.Errorf("released %v before the volume was gone", released)
	}
	if err := host.Unmount(context.Background(), nested); err != nil {
		t.Fatal(err)
	}
	if err := b.TearDown(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if len(released) != 1 || released[0] != "kubernetes.io/configmap/u1-conf" {
		t.Errorf("released %v", released)
	}
}

func TestNotifyRemountsThePod(t *testing.T) {
	var remounted []types.UID
	var named []string
	b := &Base{PluginName: "kubernetes.io/secret"}
	if err := b.InitBase(&plugins.Host{Ops: fakehost.New(), Remount: func(uid types.UID) { remounted = append(remounted, uid) }}); err != nil {
		t.Fatal(err)
	}
	b.OnChange(func(v string) { named = append(named, v) })
	pod := &corev1.Pod{}
	pod.UID = "u9"
	name, err := b.Track(plugins.SetUpArgs{Spec: &plugins.Spec{Name: "s"}, Pod: pod})
	if err != nil {
		t.Fatal(err)
	}
	b.Notify("kubernetes.io/configmap/u9-s") // another plugin's: ignored
	b.Notify(name)
	if len(remounted) != 1 || remounted[0] != "u9" || len(named) != 1 || named[0] != name {
		t.Errorf("remounted %v, named %v", remounted, named)
	}
	var released []string
	b.Release = func(v string) { released = append(released, v) }
	b.ForgetPod("other")
	b.ForgetPod("u9")
	if len(released) != 1 || released[0] != name {
		t.Errorf("ForgetPod released %v, want [%s]", released, name)
	}
	b.Notify(name)
	if len(remounted) != 1 {
		t.Errorf("a forgotten pod was remounted: %v", remounted)
	}
}
