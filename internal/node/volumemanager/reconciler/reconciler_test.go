package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/reconstruction"
)

// fakePlugin is an attachable device mounter that logs its calls.
type fakePlugin struct {
	mu          sync.Mutex
	calls       []string
	setUpErr    error
	mountDevErr error
}

func (f *fakePlugin) log(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakePlugin) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

func (f *fakePlugin) Name() string                                  { return "example.com/fake" }
func (f *fakePlugin) Init(*plugins.Host) error                      { return nil }
func (f *fakePlugin) CanSupport(*plugins.Spec) bool                 { return true }
func (f *fakePlugin) Attachable(*plugins.Spec) bool                 { return true }
func (f *fakePlugin) DeviceMountPath(*plugins.Spec) (string, error) { return "", nil }
func (f *fakePlugin) VolumeName(s *plugins.Spec, p *corev1.Pod) (string, error) {
	return "fake/" + s.Name, nil
}
func (f *fakePlugin) SetUp(ctx context.Context, a plugins.SetUpArgs) error {
	f.log("SetUp " + string(a.Pod.UID) + " " + a.DeviceMountPath)
	return f.setUpErr
}
func (f *fakePlugin) TearDown(ctx context.Context, dir string) error {
	f.log("TearDown " + filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(dir)))))
	return nil
}
func (f *fakePlugin) MountDevice(ctx context.Context, s *plugins.Spec, p string) error {
	f.log("MountDevice")
	return f.mountDevErr
}
func (f *fakePlugin) UnmountDevice(ctx context.Context, p string) error {
	f.log("UnmountDevice")
	return nil
}

type devPathPlugin struct {
	*fakePlugin
	root string
}

func (d devPathPlugin) DeviceMountPath(*plugins.Spec) (string, error) {
	return filepath.Join(d.root, "plugins/example.com~fake/globalmount"), nil
}

var _ plugins.DeviceMounter = devPathPlugin{}
var _ plugins.Attachable = devPathPlugin{}

// testConfig is a reconciler's Config on fakes under root: nothing
// attached, ready, no node labels, a recorder of 10 events; a test
// changes what it needs before New.
func testConfig(root string, desired *cache.Desired, actual *cache.Actual) Config {
	return Config{RootDir: root, Ops: fakehost.New(), Desired: desired, Actual: actual,
		Store: reconstruction.Store{Root: root}, Recorder: record.NewFakeRecorder(10),
		Attached: func() []corev1.AttachedVolume { return nil }, Ready: func() bool { return true },
		NodeLabels: func(context.Context) (map[string]string, error) { return nil, nil }}
}

func TestReconcileOrder(t *testing.T) {
	root := t.TempDir()
	fp := &fakePlugin{}
	pl := devPathPlugin{fp, root}
	desired, actual := cache.NewDesired(), cache.NewActual()
	var attachedMu sync.Mutex
	var attached []corev1.AttachedVolume
	ready := true
	rec := record.NewFakeRecorder(10)
	r, err := New(Config{RootDir: root, Ops: fakehost.New(), Desired: desired, Actual: actual,
		Store: reconstruction.Store{Root: root}, Recorder: rec,
		Attached: func() []corev1.AttachedVolume {
			attachedMu.Lock()
			defer attachedMu.Unlock()
			return attached
		},
		Ready:      func() bool { return ready },
		NodeLabels: func(context.Context) (map[string]string, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := &plugins.Spec{Name: "data", Volume: &corev1.Volume{Name: "data"}}
	for _, uid := range []string{"a", "b"} {
		desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/data", OuterName: "data", Plugin: pl, Spec: spec,
			Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: typesUID(uid)}}, Attachable: true})
	}
	step := func() {
		r.Reconcile(ctx)
		r.Wait()
	}
	step()
	if fp.Calls() != "" {
		t.Fatalf("mounted before the volume was attached: %s", fp.Calls())
	}
	attachedMu.Lock()
	attached = []corev1.AttachedVolume{{Name: "fake/data"}}
	attachedMu.Unlock()
	desired.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"fake/data"})
	for range 3 {
		step()
	}
	global := filepath.Join(root, "plugins/example.com~fake/globalmount")
	if got, want := fp.Calls(), "MountDevice,SetUp a "+global+",SetUp b "+global; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, "pods/a/volume-meta/example.com~fake~~data.json")); err != nil {
		t.Fatalf("no record for the mounted volume: %v", err)
	}
	// Teardown: pods first, the device only after the last pod.
	desired.DeletePod("a")
	desired.DeletePod("b")
	ready = false
	step()
	if strings.Contains(fp.Calls(), "TearDown") {
		t.Fatal("tore down before the desired state was ready")
	}
	ready = true
	for range 4 {
		step()
	}
	calls := strings.Split(fp.Calls(), ",")
	if len(calls) != 6 || calls[3] != "TearDown a" || calls[4] != "TearDown b" || calls[5] != "UnmountDevice" {
		t.Fatalf("teardown calls %v", calls)
	}
	if len(actual.VolumeNames()) != 0 {
		t.Fatalf("actual state not empty: %v", actual.VolumeNames())
	}
	if _, err := os.Stat(filepath.Join(root, "pods/a/volume-meta/example.com~fake~~data.json")); !os.IsNotExist(err) {
		t.Fatalf("record left after teardown: %v", err)
	}
}

func TestBackoffAndEvent(t *testing.T) {
	root := t.TempDir()
	fp := &fakePlugin{setUpErr: errors.New("boom")}
	desired, actual := cache.NewDesired(), cache.NewActual()
	rec := record.NewFakeRecorder(10)
	now := time.Unix(1000, 0)
	cfg := testConfig(root, desired, actual)
	cfg.Recorder, cfg.Now = rec, func() time.Time { return now }
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := struct{ plugins.Plugin }{fp}
	desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/v", OuterName: "v", Plugin: plain,
		Spec: &plugins.Spec{Name: "v"}, Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}})
	step := func() { r.Reconcile(context.Background()); r.Wait() }
	step()
	if ev := <-rec.Events; ev != `Warning FailedMount MountVolume.SetUp failed for volume "v" : boom` {
		t.Fatalf("event %q", ev)
	}
	step()
	if n := strings.Count(fp.Calls(), "SetUp"); n != 1 {
		t.Fatalf("retried within the backoff: %d SetUps", n)
	}
	now = now.Add(initialBackoff)
	step()
	if n := strings.Count(fp.Calls(), "SetUp"); n != 2 {
		t.Fatalf("not retried after the backoff: %d SetUps", n)
	}
	now = now.Add(initialBackoff) // the delay doubled: still waiting
	step()
	if n := strings.Count(fp.Calls(), "SetUp"); n != 2 {
		t.Fatalf("backoff did not double: %d SetUps", n)
	}
	if m, ok := actual.Mounted("fake/v", "a"); !ok || !m.Uncertain {
		t.Fatal("a failed SetUp is not recorded as uncertain")
	}
}

func typesUID(s string) types.UID { return types.UID(s) }

type contentDirPlugin struct{ plugins.Plugin }

func (contentDirPlugin) ContentDir(dir string) string { return dir + "/mount" }

func TestContentDirIsHostPath(t *testing.T) {
	root := t.TempDir()
	desired, actual := cache.NewDesired(), cache.NewActual()
	r, err := New(testConfig(root, desired, actual))
	if err != nil {
		t.Fatal(err)
	}
	pl := contentDirPlugin{&fakePlugin{}}
	desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/v", OuterName: "v", Plugin: pl,
		Spec: &plugins.Spec{Name: "v"}, Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}})
	r.Reconcile(context.Background())
	r.Wait()
	m, ok := actual.Mounted("fake/v", "a")
	dir := plugins.PodVolumeDir(root, "a", pl.Name(), "v")
	if !ok || m.Dir != dir || m.HostPath != dir+"/mount" {
		t.Fatalf("mounted %v: dir %s, host path %s; want %s and its mount/", ok, m.Dir, m.HostPath, dir)
	}
}

// podBlockPlugin is a device mounter that maps block devices per pod.
type podBlockPlugin struct {
	devPathPlugin
	dev string
}

func (p podBlockPlugin) MapPodDevice(ctx context.Context, a plugins.SetUpArgs) (string, error) {
	p.log("MapPodDevice " + string(a.Pod.UID) + " " + a.DeviceMountPath)
	return p.dev, nil
}

func (p podBlockPlugin) UnmapPodDevice(ctx context.Context, s *plugins.Spec, uid types.UID) error {
	p.log("UnmapPodDevice " + string(uid))
	return nil
}

func TestPodBlockMapper(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "dev")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fp := &fakePlugin{}
	pl := podBlockPlugin{devPathPlugin{fp, root}, dev}
	desired, actual := cache.NewDesired(), cache.NewActual()
	r, err := New(testConfig(root, desired, actual))
	if err != nil {
		t.Fatal(err)
	}
	spec := &plugins.Spec{Name: "v", Volume: &corev1.Volume{Name: "v"}, Block: true}
	desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/v", OuterName: "v", Plugin: pl, Spec: spec,
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}})
	step := func() { r.Reconcile(context.Background()); r.Wait() }
	step()
	step()
	global := filepath.Join(root, "plugins/example.com~fake/globalmount")
	if got, want := fp.Calls(), "MountDevice,MapPodDevice a "+global; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	link := plugins.PodDeviceDir(root, "a", pl.Name()) + "/v"
	if target, err := os.Readlink(link); err != nil || target != dev {
		t.Fatalf("pod link -> %q, %v; want %s", target, err, dev)
	}
	desired.DeletePod("a")
	step()
	step()
	if got, want := fp.Calls(), "MountDevice,MapPodDevice a "+global+",UnmapPodDevice a,UnmountDevice"; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
}
