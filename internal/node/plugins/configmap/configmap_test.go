package configmap

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/objectcache"
)

// env is a configMap plugin on a fake API and a fake host.
type env struct {
	client   *fake.Clientset
	objects  *objectcache.Cache
	plugin   *Plugin
	changed  chan string
	remounts chan types.UID
	watching chan struct{}
	root     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{client: fake.NewClientset(), changed: make(chan string, 16), remounts: make(chan types.UID, 16), watching: make(chan struct{}, 16), root: t.TempDir()}
	// Signal once a watch is registered with the fake API, so a test
	// changes an object only when the change will be seen.
	e.client.PrependWatchReactor("configmaps", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := e.client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		e.watching <- struct{}{}
		return true, w, err
	})
	e.objects = objectcache.New(e.client, nil)
	e.plugin = New(e.objects)
	if err := e.plugin.Init(&plugins.Host{RootDir: e.root, NodeName: "n1", Ops: fakehost.New(), Client: e.client,
		Remount: func(uid types.UID) { e.remounts <- uid }}); err != nil {
		t.Fatal(err)
	}
	e.plugin.OnChange(func(v string) { e.changed <- v })
	return e
}

func (e *env) waitChanged(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-e.changed:
		if got != want {
			t.Fatalf("change reported for %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no change reported for %s", want)
	}
}

func (e *env) waitWatching(t *testing.T) {
	t.Helper()
	select {
	case <-e.watching:
	case <-time.After(30 * time.Second):
		t.Fatal("no watch started")
	}
}

func volumeArgs(root, cmName string, optional bool) plugins.SetUpArgs {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid1"}}
	vol := &corev1.Volume{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: cmName},
		DefaultMode:          ptr(int32(0o644)),
		Optional:             &optional,
	}}}
	return plugins.SetUpArgs{
		Spec: &plugins.Spec{Name: "conf", Volume: vol},
		Pod:  pod,
		Dir:  filepath.Join(root, "pods/uid1/volumes/kubernetes.io~configmap/conf"),
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUpdateReachesDisk(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", ResourceVersion: "1"}, Data: map[string]string{"k": "v1"}}
	if _, err := e.client.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	args := volumeArgs(e.root, "app", false)
	name, _ := e.plugin.VolumeName(args.Spec, args.Pod)
	if name != "kubernetes.io/configmap/uid1-conf" {
		t.Errorf("VolumeName = %q", name)
	}
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(args.Dir, "k")); got != "v1" {
		t.Fatalf("k = %q", got)
	}
	e.waitWatching(t)

	cm.Data["k"], cm.ResourceVersion = "v2", "2"
	if _, err := e.client.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitChanged(t, name)
	if uid := <-e.remounts; uid != "uid1" {
		t.Errorf("Host.Remount called for pod %q, want uid1", uid)
	}
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(args.Dir, "k")); got != "v2" {
		t.Fatalf("after the update k = %q, want v2", got)
	}

	if err := e.plugin.TearDown(ctx, args.Dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(args.Dir); !os.IsNotExist(err) {
		t.Errorf("TearDown left %s: %v", args.Dir, err)
	}
	if n := e.objects.Watching(); n != 0 {
		t.Errorf("%d watches left after the last volume went", n)
	}
}

func TestMissingThenCreated(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	args := volumeArgs(e.root, "late", false)
	name, _ := e.plugin.VolumeName(args.Spec, args.Pod)
	err := e.plugin.SetUp(ctx, args)
	if err == nil || err.Error() != `configmap "late" not found` {
		t.Fatalf("SetUp of a missing configMap = %v", err)
	}
	e.waitWatching(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "ns", ResourceVersion: "5"}, Data: map[string]string{"k": "here"}}
	if _, err := e.client.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitChanged(t, name)
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(args.Dir, "k")); got != "here" {
		t.Fatalf("k = %q", got)
	}
}

func TestOptionalMissing(t *testing.T) {
	e := newEnv(t)
	args := volumeArgs(e.root, "none", true)
	if err := e.plugin.SetUp(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(args.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Name() != "..data" && en.Name()[:2] != ".." {
			t.Errorf("optional missing configMap shows %s", en.Name())
		}
	}
}

func TestSharedWatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", ResourceVersion: "1"}, Data: map[string]string{"k": "v"}}
	if _, err := e.client.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := volumeArgs(e.root, "app", false)
	b := volumeArgs(e.root, "app", false)
	b.Pod = b.Pod.DeepCopy()
	b.Pod.UID = "uid2"
	b.Dir = filepath.Join(e.root, "pods/uid2/volumes/kubernetes.io~configmap/conf")
	for _, args := range []plugins.SetUpArgs{a, b} {
		if err := e.plugin.SetUp(ctx, args); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.objects.Watching(); n != 1 {
		t.Errorf("two pods reading one configMap: %d watches, want 1", n)
	}
	if err := e.plugin.TearDown(ctx, a.Dir); err != nil {
		t.Fatal(err)
	}
	if n := e.objects.Watching(); n != 1 {
		t.Errorf("watch stopped while a pod still reads the configMap (%d)", n)
	}
	if err := e.plugin.TearDown(ctx, b.Dir); err != nil {
		t.Fatal(err)
	}
	if n := e.objects.Watching(); n != 0 {
		t.Errorf("watch kept after the last pod went (%d)", n)
	}
}
