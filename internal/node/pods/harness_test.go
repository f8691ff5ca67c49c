package pods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critesting "k8s.io/cri-api/pkg/apis/testing"
	testclock "k8s.io/utils/clock/testing"

	"volplane/internal/node/volumemanager"
)

// callLog is one ordered record of the calls the tests check the order
// of, across the runtime, the volume manager and the API.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, s)
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// loggingRuntime is cri-api's fake runtime with the stop and remove calls
// recorded in the shared log.
type loggingRuntime struct {
	*critesting.FakeRuntimeService
	log *callLog
}

func (r *loggingRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.log.add("StopContainer " + id)
	return r.FakeRuntimeService.StopContainer(ctx, id, timeout)
}

func (r *loggingRuntime) StopPodSandbox(ctx context.Context, id string) error {
	r.log.add("StopPodSandbox")
	return r.FakeRuntimeService.StopPodSandbox(ctx, id)
}

func (r *loggingRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	r.log.add("RemovePodSandbox")
	return r.FakeRuntimeService.RemovePodSandbox(ctx, id)
}

// fakeVolumes is a volume manager whose volumes are directories made on
// demand under a temporary directory.
type fakeVolumes struct {
	log      *callLog
	root     string
	podDir   func(types.UID) string
	mountErr error
	// mountBlocks makes WaitForAttachAndMount wait for its context.
	mountBlocks bool

	mu       sync.Mutex
	subPaths []volumemanager.SubPathRequest
}

func (f *fakeVolumes) Run(ctx context.Context) {}

func (f *fakeVolumes) WaitForAttachAndMount(ctx context.Context, pod *corev1.Pod) error {
	f.log.add("WaitForAttachAndMount")
	if f.mountBlocks {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.mountErr
}

func (f *fakeVolumes) PodVolumes(uid types.UID) map[string]volumemanager.MountedVolume {
	return map[string]volumemanager.MountedVolume{
		"data":  {HostPath: filepath.Join(f.root, string(uid), "data")},
		"ro":    {HostPath: filepath.Join(f.root, string(uid), "ro"), ReadOnly: true},
		"block": {DevicePath: "/dev/loop7"},
	}
}

func (f *fakeVolumes) PrepareSubPath(ctx context.Context, req volumemanager.SubPathRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subPaths = append(f.subPaths, req)
	return fmt.Sprintf("/subpaths/%s/%s/%d", req.Volume, req.Container, req.MountIndex), nil
}

func (f *fakeVolumes) WaitForUnmount(ctx context.Context, pod *corev1.Pod) error {
	dir := f.podDir(pod.UID)
	_, err := os.Stat(dir)
	f.log.add(fmt.Sprintf("WaitForUnmount dirExists=%v", err == nil))
	return nil
}

func (f *fakeVolumes) VolumesInUse() []corev1.UniqueVolumeName              { return nil }
func (f *fakeVolumes) VolumesInUseChanged() <-chan struct{}                 { return nil }
func (f *fakeVolumes) StatesSynced() bool                                   { return true }
func (f *fakeVolumes) MarkVolumesAsReportedInUse([]corev1.UniqueVolumeName) {}

// harness is a Workers on fakes, with a fake clock for the backoff.
type harness struct {
	t        *testing.T
	w        *Workers
	rt       *loggingRuntime
	images   *critesting.FakeImageService
	client   *fake.Clientset
	recorder *record.FakeRecorder
	volumes  *fakeVolumes
	clock    *testclock.FakeClock
	log      *callLog
	events   []string
}

func newHarness(t *testing.T, objects ...runtime.Object) *harness {
	t.Helper()
	return newHarnessOn(t, critesting.NewFakeRuntimeService(), objects...)
}

func newHarnessOn(t *testing.T, frt *critesting.FakeRuntimeService, objects ...runtime.Object) *harness {
	t.Helper()
	log := &callLog{}
	root := t.TempDir()
	h := &harness{
		t:        t,
		rt:       &loggingRuntime{frt, log},
		images:   critesting.NewFakeImageService(),
		client:   fake.NewClientset(objects...),
		recorder: record.NewFakeRecorder(1000),
		clock:    testclock.NewFakeClock(time.Now()),
		log:      log,
	}
	h.images.SetFakeImages([]string{"busybox:latest"})
	h.client.PrependReactor("delete", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		_, err := os.Stat(filepath.Join(root, "kubelet", "pods"))
		dirs, _ := os.ReadDir(filepath.Join(root, "kubelet", "pods"))
		log.add(fmt.Sprintf("delete pod (pod dirs left: %d, %v)", len(dirs), err == nil))
		return false, nil, nil
	})
	h.volumes = &fakeVolumes{log: log, root: filepath.Join(root, "volumes")}
	w, err := New(Config{
		NodeName:      "node1",
		RootDir:       filepath.Join(root, "kubelet"),
		LogDir:        filepath.Join(root, "logs"),
		Client:        h.client,
		Recorder:      h.recorder,
		Runtime:       h.rt,
		Images:        h.images,
		Volumes:       h.volumes,
		NodeIP:        "10.0.0.5",
		APIServerHost: "10.0.0.1",
		APIServerPort: 6443,
		PodsSynced:    func() bool { return true },
		MountPoints:   func() ([]string, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = flowcontrol.NewFakeBackOff(backoffInitial, backoffMax, h.clock)
	w.now = h.clock.Now
	w.status.now = h.clock.Now
	w.ctx = context.Background()
	h.volumes.podDir = w.podDir
	h.w = w
	return h
}

// worker returns the pod's worker, made without its goroutine: the test
// drives it with sync.
func (h *harness) worker(pod *corev1.Pod) *podWorker {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if pw, ok := h.w.workers[pod.UID]; ok {
		return pw
	}
	pw := newPodWorker(h.w, pod.DeepCopy(), false)
	h.w.workers[pod.UID] = pw
	h.w.byName[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}] = pod.UID
	return pw
}

// sync runs one sync of the pod's worker with the API's copy of the pod.
func (h *harness) sync(pw *podWorker) (time.Duration, bool) {
	h.t.Helper()
	if p, err := h.client.CoreV1().Pods(pw.namespace).Get(context.Background(), pw.name, metav1.GetOptions{}); err == nil {
		pw.update(p, false)
	}
	return pw.sync(context.Background())
}

// apiPod reads the pod from the fake API.
func (h *harness) apiPod(pod *corev1.Pod) *corev1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatalf("get pod: %v", err)
	}
	return p
}

// drainEvents returns the events recorded since the last call.
func (h *harness) drainEvents() []string {
	for {
		select {
		case e := <-h.recorder.Events:
			h.events = append(h.events, e)
		default:
			out := h.events
			h.events = nil
			return out
		}
	}
}

func hasEvent(events []string, substr string) bool {
	for _, e := range events {
		if strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

// exit makes the container's running instance exit with code, at the
// fake clock's time.
func (h *harness) exit(pod *corev1.Pod, container string, code int32) string {
	h.t.Helper()
	h.rt.Lock()
	defer h.rt.Unlock()
	for id, c := range h.rt.Containers {
		if c.Labels[labelPodUID] == string(pod.UID) && c.Labels[labelContainerName] == container &&
			c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.State = runtimeapi.ContainerState_CONTAINER_EXITED
			c.ExitCode = code
			c.FinishedAt = h.clock.Now().UnixNano()
			return id
		}
	}
	h.t.Fatalf("no running instance of %s", container)
	return ""
}

func testPod(name string, containers ...corev1.Container) *corev1.Pod {
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: corev1.PodSpec{
			NodeName:                      "node1",
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
			Containers:                    containers,
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort},
	}
}

func ctr(name string) corev1.Container {
	return corev1.Container{
		Name: name, Image: "busybox", Command: []string{"sh", "-c", "sleep 1000"},
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
}

func containerStatus(t *testing.T, pod *corev1.Pod, name string) corev1.ContainerStatus {
	t.Helper()
	for _, s := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for container %s in %+v", name, pod.Status)
	return corev1.ContainerStatus{}
}

func condition(pod *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
