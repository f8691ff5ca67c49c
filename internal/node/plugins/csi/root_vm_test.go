package csi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"volplane/internal/csi/kube"
	"volplane/internal/csidriver"
	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager"
	"volplane/internal/node/volumemanager/reconstruction"
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
	pod, objs := claimPod(b)
	pods := &podList{}
	pods.set(pod)
	ops := hostops.New()
	unique := kube.UniqueVolumeName(csidriver.DriverName, b.id)
	run, events := managerRunner(t, b, pods, objs...)
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
		if n := hostopstest.MountCount(t, path); n != 1 {
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
	waitNoMounts(t, ops, b.root)
	waitGone(t, filepath.Join(gm, fmt.Sprintf("%x", sha256.Sum256([]byte(b.id)))))
	if b, err := os.ReadFile(filepath.Join(b.d.Pool().DirPath(b.id), "hello")); err != nil || string(b) != "data" {
		t.Errorf("data gone after teardown: %q, %v", b, err)
	}
	b.deleteVolume(t)
}

// managerRunner returns a function that starts a volume manager (with a
// new plugin: a fresh agent) on the built-in driver's node root, and the
// recorder of its events.
func managerRunner(t *testing.T, b *builtIn, pods *podList, objs ...runtime.Object) (func() (*volumemanager.Manager, func()), *record.FakeRecorder) {
	cs := fake.NewClientset(objs...)
	events := record.NewFakeRecorder(1000)
	unique := kube.UniqueVolumeName(csidriver.DriverName, b.id)
	return func() (*volumemanager.Manager, func()) {
		p, err := New(Config{Drivers: b.reg})
		if err != nil {
			t.Fatal(err)
		}
		m, err := volumemanager.New(volumemanager.Config{RootDir: b.root, NodeName: nodeName, Client: cs,
			Recorder: events, Ops: hostops.New(), Pods: pods,
			AttachedVolumes: func() []corev1.AttachedVolume { return []corev1.AttachedVolume{{Name: unique}} },
			Plugins:         []plugins.Plugin{p}, Log: slog.Default()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { defer func() { done <- struct{}{} }(); m.Run(ctx) }()
		go func() { defer func() { done <- struct{}{} }(); reportInUse(ctx, m) }()
		var once sync.Once
		stop := func() { once.Do(func() { cancel(); <-done; <-done; p.Close() }) }
		t.Cleanup(stop)
		return m, stop
	}, events
}

// reportInUse does what the agent's status loop does: each time the
// volumes in use change, it "writes" them to the Node's status and tells
// the manager they were reported in use, so attachable volumes are
// staged.
func reportInUse(ctx context.Context, m *volumemanager.Manager) {
	for {
		changed := m.VolumesInUseChanged()
		m.MarkVolumesAsReportedInUse(m.VolumesInUse())
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// claimPod returns a pod of the built-in rig's node using the rig's
// volume through a bound claim, and the API objects it needs.
func claimPod(b *builtIn) (*corev1.Pod, []runtime.Object) {
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
	return pod, append(b.objs, claim, node)
}

// waitNoMounts waits (a minute at most) until nothing is mounted under
// root.
func waitNoMounts(t *testing.T, ops hostops.Host, root string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		mps, err := plugins.MountsUnder(ops, root)
		if err != nil {
			t.Fatal(err)
		}
		if len(mps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mounts left under the root: %v", mps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGone waits (a minute at most) until path does not exist: the
// staging directory UnmountDevice removes once NodeUnstageVolume has
// returned, after the unmount waitNoMounts saw.
func waitGone(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		_, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s left: %v", path, err)
		}
	}
}

// TestRootCrashBetweenStageAndPublish is an agent killed after
// NodeStageVolume and before NodePublishVolume: the device record and the
// staging are on disk, nothing else. A new volume manager publishes the
// volume for a pod that still wants it, staging nothing twice, or
// unstages it when the pod is gone; either way nothing is left mounted
// at the end.
func TestRootCrashBetweenStageAndPublish(t *testing.T) {
	for _, podStays := range []bool{true, false} {
		t.Run(map[bool]string{true: "pod stays", false: "pod gone"}[podStays], func(t *testing.T) {
			b := startBuiltIn(t)
			pod, objs := claimPod(b)
			ctx := context.Background()
			unique := kube.UniqueVolumeName(csidriver.DriverName, b.id)
			ops := hostops.New()

			// What the reconciler did before it died.
			dead, err := New(Config{Drivers: b.reg})
			if err != nil {
				t.Fatal(err)
			}
			if err := dead.Init(&plugins.Host{RootDir: b.root, NodeName: nodeName, Ops: ops, Client: fake.NewClientset(objs...),
				Recorder: record.NewFakeRecorder(10), Log: slog.Default(), Remount: func(types.UID) {}}); err != nil {
				t.Fatal(err)
			}
			s := &plugins.Spec{Name: "data", Volume: &pod.Spec.Volumes[0], PV: b.pv}
			gm, _ := dead.DeviceMountPath(s)
			if err := (reconstruction.Store{Root: b.root}).WriteDevice(&reconstruction.DeviceRecord{Plugin: PluginName,
				VolumeName: string(unique), MountPath: gm, Volume: s.Volume, PV: b.pv}); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(gm, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := dead.MountDevice(ctx, s, gm); err != nil {
				t.Fatal(err)
			}
			dead.Close()

			pods := &podList{}
			if podStays {
				pods.set(pod)
			}
			run, _ := managerRunner(t, b, pods, objs...)
			m, _ := run()
			if podStays {
				wctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := m.WaitForAttachAndMount(wctx, pod); err != nil {
					t.Fatal(err)
				}
				dir := plugins.PodVolumeDir(b.root, pod.UID, PluginName, b.pv.Name)
				for _, path := range []string{gm, dir + "/mount"} {
					if n := hostopstest.MountCount(t, path); n != 1 {
						t.Errorf("%d mounts at %s, want 1", n, path)
					}
				}
				pods.set()
				if err := m.WaitForUnmount(wctx, pod); err != nil {
					t.Fatal(err)
				}
			}
			waitNoMounts(t, ops, b.root)
			waitGone(t, filepath.Dir(gm))
			b.deleteVolume(t) // refused by the driver while staged
		})
	}
}

// TestRootBlockVolume maps a raw block volume of the built-in driver into
// a pod through the volume manager (staged, published per pod, linked at
// upstream's paths), writes to the device, restarts the manager and
// unmaps it all when the pod goes.
func TestRootBlockVolume(t *testing.T) {
	b := startBuiltInMode(t, true)
	pod, objs := claimPod(b)
	pod.Spec.Containers[0].VolumeMounts = nil
	pod.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}
	pods := &podList{}
	pods.set(pod)
	ops := hostops.New()
	run, events := managerRunner(t, b, pods, objs...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wait := func(m *volumemanager.Manager) {
		t.Helper()
		if err := m.WaitForAttachAndMount(ctx, pod); err != nil {
			for len(events.Events) > 0 {
				t.Log(<-events.Events)
			}
			t.Fatal(err)
		}
	}
	m, stop := run()
	wait(m)
	dev := m.PodVolumes(pod.UID)["data"].DevicePath
	if want := plugins.PodDeviceDir(b.root, pod.UID, PluginName) + "/" + b.pv.Name; dev != want {
		t.Fatalf("device path %q, want %s", dev, want)
	}
	fi, err := os.Stat(dev)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		t.Fatalf("%s is no block device: %v, %v", dev, fi, err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("block data"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	publish := filepath.Join(b.root, "plugins", PluginName, "volumeDevices", "publish", b.pv.Name, string(pod.UID))
	if n := hostopstest.MountCount(t, publish); n != 1 {
		t.Errorf("%d mounts at the publish path %s, want 1", n, publish)
	}
	stop()

	m, _ = run()
	wait(m)
	if n := hostopstest.MountCount(t, publish); n != 1 {
		t.Errorf("after the restart: %d mounts at %s, want 1", n, publish)
	}
	pods.set()
	if err := m.WaitForUnmount(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitNoMounts(t, ops, b.root)
	waitBlockUnstaged(t, b)
	b.deleteVolume(t)
}

// waitBlockUnstaged waits (a minute at most) until the block volume's
// staging, publish and vol_data.json directories are gone (a raw block
// staging is no mount: the unstaging itself is waited for), then checks
// that its loop device is detached.
func waitBlockUnstaged(t *testing.T, b *builtIn) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var left []string
		for _, dir := range []string{"staging/" + b.pv.Name, "publish/" + b.pv.Name, b.pv.Name} {
			if _, err := os.Stat(filepath.Join(b.root, "plugins", PluginName, "volumeDevices", dir)); err == nil {
				left = append(left, dir)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in volumeDevices: %v", left)
		}
	}
	if dev, err := hostops.New().LoopFind(b.d.Pool().BlockPath(b.id)); err != nil || dev != "" {
		t.Errorf("loop device of the volume after unstaging: %q, %v; want none", dev, err)
	}
}

// TestRootBlockVolumePodGoneAcrossRestart: the agent stops while a pod
// has a raw block volume, and the pod is gone when it starts again. The
// staging is no mount point, yet reconstruction keeps the device
// (uncertain) so that the new manager unmaps and unstages it: no loop
// device, staging or vol_data.json is left behind.
func TestRootBlockVolumePodGoneAcrossRestart(t *testing.T) {
	b := startBuiltInMode(t, true)
	pod, objs := claimPod(b)
	pod.Spec.Containers[0].VolumeMounts = nil
	pod.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}
	pods := &podList{}
	pods.set(pod)
	run, events := managerRunner(t, b, pods, objs...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, stop := run()
	if err := m.WaitForAttachAndMount(ctx, pod); err != nil {
		for len(events.Events) > 0 {
			t.Log(<-events.Events)
		}
		t.Fatal(err)
	}
	if dev, err := hostops.New().LoopFind(b.d.Pool().BlockPath(b.id)); err != nil || dev == "" {
		t.Fatalf("no loop device for the staged volume: %q, %v", dev, err)
	}
	stop()

	pods.set()
	run()
	waitNoMounts(t, hostops.New(), b.root)
	waitBlockUnstaged(t, b)
	b.deleteVolume(t) // refused by the driver while staged
}
