package csi

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"volplane/internal/csi/kube"
	"volplane/internal/csidriver"
	"volplane/internal/hostops"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager"
)

// podList is the agent's pod list as the volume manager sees it.
type podList struct {
	mu   sync.Mutex
	pods []*corev1.Pod
}

func (l *podList) Pods() []*corev1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pods
}

// ContainersTerminated is true once the pod is no longer listed.
func (l *podList) ContainersTerminated(uid types.UID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.pods {
		if p.UID == uid {
			return false
		}
	}
	return true
}

func (l *podList) set(pods ...*corev1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = pods
}

// TestRootVolumeManagerRestart runs the volume manager with this plugin
// and the built-in driver: a pod's claim is staged and published, the
// manager stops (an agent restart: it unmounts nothing) and a new one
// with a new plugin finds the volume again without mounting twice; the
// pod goes and everything is torn down, the data kept in the pool.
func TestRootVolumeManagerRestart(t *testing.T) {
	b := startBuiltIn(t)
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns", UID: "claim-uid"},
		Spec:   corev1.PersistentVolumeClaimSpec{VolumeName: b.pv.Name},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	b.pv.Spec.ClaimRef = &corev1.ObjectReference{Name: "data", Namespace: "ns", UID: claim.UID}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	pod := testPod()
	pod.Spec.NodeName = nodeName
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	pod.Spec.Containers = []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}
	pods := &podList{}
	pods.set(pod)
	ops := hostops.New()
	cs := fake.NewClientset(append(b.objs, claim, node)...)
	unique := kube.UniqueVolumeName(csidriver.DriverName, b.id)

	events := record.NewFakeRecorder(1000)
	run := func() (*volumemanager.Manager, func()) {
		p, err := New(Config{Drivers: b.reg})
		if err != nil {
			t.Fatal(err)
		}
		m, err := volumemanager.New(volumemanager.Config{RootDir: b.root, NodeName: nodeName, Client: cs,
			Recorder: events, Ops: ops, Pods: pods,
			AttachedVolumes: func() []corev1.AttachedVolume { return []corev1.AttachedVolume{{Name: unique}} },
			Plugins:         []plugins.Plugin{p}, Log: slog.Default()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); m.Run(ctx) }()
		stop := func() { cancel(); <-done; p.Close() }
		t.Cleanup(stop)
		return m, stop
	}
	wait := func(m *volumemanager.Manager) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.WaitForAttachAndMount(ctx, pod); err != nil {
			for len(events.Events) > 0 {
				t.Log(<-events.Events)
			}
			t.Fatal(err)
		}
	}

	m, stop := run()
	wait(m)
	dir := plugins.PodVolumeDir(b.root, pod.UID, PluginName, b.pv.Name)
	if got := m.PodVolumes(pod.UID)["data"].HostPath; got != dir+"/mount" {
		t.Fatalf("the runtime would bind %q, want %s/mount", got, dir)
	}
	if got := m.VolumesInUse(); len(got) != 1 || got[0] != unique {
		t.Errorf("volumesInUse %v, want [%s]", got, unique)
	}
	if err := os.WriteFile(filepath.Join(dir, "mount", "hello"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop()

	m, _ = run()
	wait(m)
	gm := filepath.Join(b.root, "plugins", PluginName, csidriver.DriverName)
	for _, path := range []string{dir + "/mount"} {
		if n := mountsAt(t, ops, path); n != 1 {
			t.Errorf("after the restart: %d mounts at %s, want 1", n, path)
		}
	}
	if mps, err := plugins.MountsUnder(ops, gm); err != nil || len(mps) != 1 {
		t.Errorf("after the restart: global mounts %v, %v; want one", mps, err)
	}

	pods.set()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.WaitForUnmount(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// The device goes after the pod's volume; wait for it too.
	for {
		mps, err := plugins.MountsUnder(ops, b.root)
		if err != nil {
			t.Fatal(err)
		}
		if len(mps) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("mounts left under the root: %v", mps)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if b, err := os.ReadFile(filepath.Join(b.d.Pool().DirPath(b.id), "hello")); err != nil || string(b) != "data" {
		t.Errorf("data gone after teardown: %q, %v", b, err)
	}
	b.deleteVolume(t)
}
