package volumemanager

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops"
	"volplane/internal/node/plugins"
)

// fakePods is a PodStates the test drives.
type fakePods struct {
	mu         sync.Mutex
	pods       map[types.UID]*corev1.Pod
	terminated map[types.UID]bool
}

func newFakePods(pods ...*corev1.Pod) *fakePods {
	f := &fakePods{pods: map[types.UID]*corev1.Pod{}, terminated: map[types.UID]bool{}}
	for _, p := range pods {
		f.pods[p.UID] = p
	}
	return f
}

func (f *fakePods) Pods() []*corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*corev1.Pod
	for _, p := range f.pods {
		out = append(out, p)
	}
	return out
}

func (f *fakePods) ContainersTerminated(uid types.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.terminated[uid]
}

func (f *fakePods) add(p *corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[p.UID] = p
}

func (f *fakePods) terminate(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated[uid] = true
}

func (f *fakePods) remove(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, uid)
}

func testPod(name string, uid types.UID, vols ...corev1.Volume) *corev1.Pod {
	var mounts []corev1.VolumeMount
	for _, v := range vols {
		mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: "/mnt/" + v.Name})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uid},
		Spec: corev1.PodSpec{
			NodeName:   "node1",
			Volumes:    vols,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", VolumeMounts: mounts}},
		},
	}
}

type harness struct {
	m        *Manager
	pods     *fakePods
	client   *fake.Clientset
	recorder *record.FakeRecorder
	root     string
	cancel   context.CancelFunc
	done     chan struct{}
}

// start runs a manager on root until the test ends (or stop).
func start(t *testing.T, root string, ops hostops.Host, pods *fakePods, ps []plugins.Plugin, objs ...runtimeObject) *harness {
	t.Helper()
	h, err := newHarness(root, ops, pods, ps, objs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	return h
}

// startNoTest is start for a crash child process.
func startNoTest(root string, ops hostops.Host, pods *fakePods, ps []plugins.Plugin) *harness {
	h, err := newHarness(root, ops, pods, ps)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil
	}
	return h
}

func newHarness(root string, ops hostops.Host, pods *fakePods, ps []plugins.Plugin, objs ...runtimeObject) (*harness, error) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"kubernetes.io/hostname": "node1"}}}
	client := fake.NewClientset(append([]runtimeObject{node}, objs...)...)
	rec := record.NewFakeRecorder(1000)
	m, err := New(Config{RootDir: root, NodeName: "node1", Client: client, Recorder: rec, Ops: ops, Pods: pods,
		AttachedVolumes: func() []corev1.AttachedVolume { return nil }, Plugins: ps})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{m: m, pods: pods, client: client, recorder: rec, root: root, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); m.Run(ctx) }()
	return h, nil
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

func (h *harness) waitMounted(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.m.WaitForAttachAndMount(ctx, pod); err != nil {
		t.Fatalf("WaitForAttachAndMount: %v; events: %v", err, h.events())
	}
}

func (h *harness) waitUnmounted(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.m.WaitForUnmount(ctx, pod); err != nil {
		t.Fatalf("WaitForUnmount: %v; events: %v", err, h.events())
	}
}

// events drains the recorder.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// waitEvent waits for an event containing want.
func (h *harness) waitEvent(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var seen []string
	for {
		select {
		case e := <-h.recorder.Events:
			if contains(e, want) {
				return e
			}
			seen = append(seen, e)
		case <-timeout:
			t.Fatalf("no event with %q; saw %v", want, seen)
		}
	}
}
