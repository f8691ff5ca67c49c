package pods

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	critesting "k8s.io/cri-api/pkg/apis/testing"

	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/runtime"
)

// requireRuntime skips the test unless it runs as root with runc and
// conmon installed; under CI=true it fails instead.
func requireRuntime(t *testing.T) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, b := range []string{"runc", "conmon"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = b
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs %s (runs containers with runc and conmon)", missing)
	}
	t.Skipf("needs %s (runs containers with runc and conmon)", missing)
}

// realEnv is the pod workers on volplane's real runtime (runc and
// conmon), with a fake API and a fake volume manager whose volumes are
// plain directories.
type realEnv struct {
	*harness
	dir    string
	rtCfg  runtime.Config
	cancel context.CancelFunc
}

func newRealEnv(t *testing.T, objects ...*corev1.Pod) *realEnv {
	t.Helper()
	requireRuntime(t)
	dir := t.TempDir()
	e := &realEnv{dir: dir, rtCfg: runtime.Config{StateDir: filepath.Join(dir, "runtime"), ImagesDir: filepath.Join(dir, "images")}}
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	t.Cleanup(func() { removeAllSandboxes(t, e.rtCfg) })
	e.start(t, objects...)
	return e
}

// start makes a new runtime and new workers over the same state (a
// restart of the agent) and runs them.
func (e *realEnv) start(t *testing.T, objects ...*corev1.Pod) {
	t.Helper()
	rt, err := runtime.New(context.Background(), e.rtCfg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, critesting.NewFakeRuntimeService())
	for _, p := range objects {
		if _, err := h.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.w.cfg
	cfg.Runtime, cfg.Images = rt, rt
	cfg.RootDir, cfg.LogDir = filepath.Join(e.dir, "kubelet"), filepath.Join(e.dir, "logs")
	cfg.MountPoints = nil
	h.volumes.root = filepath.Join(e.dir, "volumes")
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	h.volumes.podDir = w.podDir
	ctx, cancel := context.WithCancel(context.Background())
	e.harness, e.cancel = h, cancel
	t.Cleanup(cancel)
	go w.Run(ctx)
}

func removeAllSandboxes(t *testing.T, cfg runtime.Config) {
	rt, err := runtime.New(context.Background(), cfg)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	sbs, _ := rt.ListPodSandbox(context.Background(), nil)
	for _, sb := range sbs {
		if err := rt.RemovePodSandbox(context.Background(), sb.Id); err != nil {
			t.Errorf("cleanup: remove sandbox: %v", err)
		}
	}
}

func shPod(name string, policy corev1.RestartPolicy, script string) *corev1.Pod {
	c := ctr("app")
	c.Command = []string{"sh", "-c", script}
	c.Env = []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "GREETING", Value: "hello from $(POD)"}}
	p := testPod(name, c)
	p.Spec.RestartPolicy = policy
	return p
}

func TestRealRuntimeLifecycle(t *testing.T) {
	run := shPod("real", corev1.RestartPolicyAlways, `echo "$GREETING"; echo "api=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"; exec sleep 1000`)
	fail := shPod("fail", corev1.RestartPolicyNever, `echo bye >/dev/termination-log; exit 3`)
	bad := shPod("bad", corev1.RestartPolicyAlways, "")
	bad.Spec.Containers[0].Command = []string{"/no/such/command"}
	e := newRealEnv(t, run, fail, bad)
	for _, p := range []*corev1.Pod{run, fail, bad} {
		e.w.Update(e.apiPod(p))
	}

	waitFor(t, "real Running", func() bool { return e.apiPod(run).Status.Phase == corev1.PodRunning })
	path, err := e.w.ContainerLogPath("default", "real", "app", false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "hello from real") && strings.Contains(string(b), "api=10.0.0.1:6443")
	})

	waitFor(t, "fail Failed", func() bool { return e.apiPod(fail).Status.Phase == corev1.PodFailed })
	cs := containerStatus(t, e.apiPod(fail), "app")
	if term := cs.State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" || term.Message != "bye\n" {
		t.Errorf("failed container: %+v", cs.State)
	}

	waitFor(t, "bad reported", func() bool {
		st := e.apiPod(bad).Status.ContainerStatuses
		return len(st) == 1 && st[0].State.Waiting != nil && st[0].State.Waiting.Reason != "ContainerCreating"
	})
	// The runtime's runc create fails for a missing command: upstream's
	// CreateContainerError, with the runtime's words.
	if s := containerStatus(t, e.apiPod(bad), "app").State; s.Waiting.Reason != "CreateContainerError" || !strings.Contains(s.Waiting.Message, "/no/such/command") {
		t.Errorf("bad command: %+v", s.Waiting)
	}

	// kill -9 of the agent: new runtime and workers over the same state.
	before := containerStatus(t, e.apiPod(run), "app")
	apiRun := e.apiPod(run)
	e.cancel()
	e.start(t, apiRun)
	e.w.Update(e.apiPod(run))
	waitFor(t, "adoption", func() bool {
		_, ok := e.w.status.get(run.UID)
		return ok && e.apiPod(run).Status.Phase == corev1.PodRunning
	})
	after := containerStatus(t, e.apiPod(run), "app")
	if after.ContainerID != before.ContainerID || after.RestartCount != 0 || after.State.Running == nil {
		t.Errorf("adoption: before %s/%d, after %+v", before.ContainerID, before.RestartCount, after)
	}

	// Graceful deletion: sleep, PID 1 of its namespace, ignores SIGTERM;
	// the grace period runs out and SIGKILL ends it.
	p := e.apiPod(run)
	now, grace := metav1.Now(), int64(2)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := e.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.w.Update(p)
	waitFor(t, "the pod object deleted", func() bool {
		_, err := e.client.CoreV1().Pods("default").Get(context.Background(), "real", metav1.GetOptions{})
		return err != nil
	})
	if _, err := os.Stat(e.w.podDir(run.UID)); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
}

// A liveness probe that never succeeds, exec'd in the container through
// the runtime: Unhealthy, the container killed and restarted.
func TestRealRuntimeLivenessRestarts(t *testing.T) {
	pod := shPod("probe", corev1.RestartPolicyAlways, "exec sleep 1000")
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo not today; exit 1"}}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 5,
	}
	e := newRealEnv(t, pod)
	e.w.Update(e.apiPod(pod))
	waitFor(t, "a restart", func() bool {
		st := e.apiPod(pod).Status.ContainerStatuses
		return len(st) == 1 && st[0].RestartCount >= 1
	})
	ev := e.drainEvents()
	if !hasEvent(ev, "Warning Unhealthy Liveness probe failed: not today") || !hasEvent(ev, "Killing Container app failed liveness probe, will be restarted") {
		t.Errorf("events %q", ev)
	}
}
