package volumemanager

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
)

// setUpCounter is an attachable plugin that counts SetUp calls.
type setUpCounter struct {
	*attachPlugin
	setUps atomic.Int32
}

func (p *setUpCounter) SetUp(context.Context, plugins.SetUpArgs) error {
	p.setUps.Add(1)
	return nil
}

// TestAttachableWaitsForReportedInUse: with the volume attached
// (status.volumesAttached lists it) the manager still sets up nothing
// until it is told that a write of the Node's status listed the volume
// in volumesInUse, as the agent tells it after each write; then the pod's
// volume is set up.
func TestAttachableWaitsForReportedInUse(t *testing.T) {
	p := &setUpCounter{attachPlugin: &attachPlugin{attachable: true}}
	vol := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d.example.com"}}}
	pod := testPod("p", "uid-1", vol)
	const unique = "test/attach/d.example.com^data"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
	m, err := New(Config{RootDir: t.TempDir(), NodeName: "node1", Client: fake.NewClientset(node),
		Recorder: record.NewFakeRecorder(100), Ops: fakehost.New(), Pods: newFakePods(pod),
		AttachedVolumes: func() []corev1.AttachedVolume { return []corev1.AttachedVolume{{Name: unique}} },
		Plugins:         []plugins.Plugin{p}})
	if err != nil {
		t.Fatal(err)
	}
	if m.StatesSynced() {
		t.Fatal("StatesSynced before reconstruction")
	}
	changed := m.VolumesInUseChanged()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, m.StatesSynced)

	waitFor(t, func() bool { return slices.Contains(m.VolumesInUse(), unique) })
	select {
	case <-changed:
	default:
		t.Fatal("VolumesInUseChanged not closed when the volume became wanted")
	}
	short, cancelShort := contextWithTimeout(t, 300)
	defer cancelShort()
	// Upstream's kubelet counts it unattached until it is verified.
	const want = "unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded"
	if err := m.WaitForAttachAndMount(short, pod); err == nil || err.Error() != want {
		t.Fatalf("before the mark: WaitForAttachAndMount = %v, want %q", err, want)
	}
	if n := p.setUps.Load(); n != 0 {
		t.Fatalf("SetUp called %d times before a status write listed the volume in use", n)
	}
	m.MarkVolumesAsReportedInUse([]corev1.UniqueVolumeName{"some/other"})
	if n := p.setUps.Load(); n != 0 {
		t.Fatalf("SetUp called after a write that did not list the volume")
	}
	m.MarkVolumesAsReportedInUse(m.VolumesInUse())
	wait, cancelWait := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelWait()
	if err := m.WaitForAttachAndMount(wait, pod); err != nil {
		t.Fatalf("after the mark: %v", err)
	}
	if n := p.setUps.Load(); n != 1 {
		t.Fatalf("SetUp called %d times, want 1", n)
	}
}

// TestStagedDeviceStaysInUse: a volume still staged (its device mounted)
// after its last pod went stays in VolumesInUse until UnmountDevice is
// done, so the attach/detach controller does not detach it while staged.
func TestStagedDeviceStaysInUse(t *testing.T) {
	p := &attachPlugin{attachable: true}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
	m, err := New(Config{RootDir: t.TempDir(), NodeName: "node1", Client: fake.NewClientset(node),
		Recorder: record.NewFakeRecorder(100), Ops: fakehost.New(), Pods: newFakePods(),
		AttachedVolumes: func() []corev1.AttachedVolume { return nil }, Plugins: []plugins.Plugin{p}})
	if err != nil {
		t.Fatal(err)
	}
	spec := &plugins.Spec{Name: "data"}
	m.actual.MarkDeviceMounted("test/attach/staged", p, spec, "/global")
	if got := m.VolumesInUse(); !slices.Equal(got, []corev1.UniqueVolumeName{"test/attach/staged"}) {
		t.Fatalf("VolumesInUse = %v with the device staged, want [test/attach/staged]", got)
	}
	m.actual.MarkDeviceUnmounted("test/attach/staged")
	if got := m.VolumesInUse(); len(got) != 0 {
		t.Fatalf("VolumesInUse = %v after UnmountDevice, want none", got)
	}
}
