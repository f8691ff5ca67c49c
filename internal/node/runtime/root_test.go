package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"volplane/internal/hostops/hostopstest"
)

// requireRuntime skips the test unless it runs as root with runc and
// conmon installed; under CI=true it fails instead.
func requireRuntime(t *testing.T) {
	t.Helper()
	var missing string
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

// testEnv is a runtime over a fresh state directory that removes every
// sandbox and container it holds, and unmounts what it mounted, when the
// test ends.
type testEnv struct {
	t      *testing.T
	dir    string
	cfg    Config
	rt     *Runtime
	ctx    context.Context
	logDir string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireRuntime(t)
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, ctx: context.Background()}
	e.cfg = Config{StateDir: filepath.Join(dir, "runtime"), ImagesDir: filepath.Join(dir, "images")}
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	t.Cleanup(e.cleanup)
	e.rt = e.open()
	return e
}

// open returns a new Runtime over the environment's state directory.
func (e *testEnv) open() *Runtime {
	e.t.Helper()
	rt, err := New(e.ctx, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return rt
}

// cleanup removes every sandbox (and so every container) and checks that
// runc knows no container any more.
func (e *testEnv) cleanup() {
	rt, err := New(e.ctx, e.cfg)
	if err != nil {
		e.t.Errorf("cleanup: %v", err)
		return
	}
	sbs, _ := rt.ListPodSandbox(e.ctx, nil)
	for _, sb := range sbs {
		if err := rt.RemovePodSandbox(e.ctx, sb.Id); err != nil {
			e.t.Errorf("cleanup: remove sandbox: %v", err)
		}
	}
	out, err := rt.runcOutput(e.ctx, "list", "-q")
	if err != nil {
		e.t.Errorf("cleanup: runc list: %v", err)
	} else if s := strings.TrimSpace(string(out)); s != "" {
		e.t.Errorf("cleanup left runc containers: %s", s)
		for _, id := range strings.Fields(s) {
			_ = rt.runc(e.ctx, "delete", "--force", id)
		}
	}
}

func (e *testEnv) sandbox(name string) (string, *runtimeapi.PodSandboxConfig) {
	e.t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(e.dir, "logs", "default_"+name+"_"+name+"-uid"),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	id, err := e.rt.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return id, cfg
}

func containerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox:latest"},
		Command:  cmd,
		LogPath:  name + "/0.log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
}

// run creates and starts a container.
func (e *testEnv) run(sb string, sbCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id, err := e.rt.CreateContainer(e.ctx, sb, cfg, sbCfg)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return id
}

// waitExited waits (without a deadline of its own: the test's) for the
// container to exit and returns its status.
func (e *testEnv) waitExited(rt *Runtime, id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if _, err := rt.waitExit(ctx, id); err != nil {
		e.t.Fatalf("container %s did not exit: %v", id, err)
	}
	st, err := rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Status
}

func TestRunHostImageLogAndExitCode(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("echo")
	id := e.run(sb, sbCfg, containerConfig("c", "sh", "-c", "echo hi; echo oops >&2; exit 3"))
	st := e.waitExited(e.rt, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 || st.Reason != ReasonError {
		t.Fatalf("status = %v exit %d reason %q, want EXITED exit 3 reason Error", st.State, st.ExitCode, st.Reason)
	}
	if st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Errorf("started %d finished %d", st.StartedAt, st.FinishedAt)
	}
	want := filepath.Join(sbCfg.LogDirectory, "c", "0.log")
	if st.LogPath != want {
		t.Errorf("log path %q, want %q", st.LogPath, want)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	got := map[string]string{}
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("log line %q is not in the CRI format", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line %q: time: %v", l, err)
		}
		if f[2] != "F" {
			t.Errorf("log line %q: tag %q, want F", l, f[2])
		}
		got[f[1]] = f[3]
	}
	if got["stdout"] != "hi" || got["stderr"] != "oops" {
		t.Errorf("log = %q, want stdout hi and stderr oops", b)
	}

	ok := e.run(sb, sbCfg, containerConfig("ok", "true"))
	if st := e.waitExited(e.rt, ok); st.ExitCode != 0 || st.Reason != ReasonCompleted {
		t.Errorf("true: exit %d reason %q, want 0 Completed", st.ExitCode, st.Reason)
	}
}

func TestReadOnlyVolume(t *testing.T) {
	e := newTestEnv(t)
	vol := filepath.Join(e.dir, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "data"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, sbCfg := e.sandbox("ro")
	cfg := containerConfig("c", "sh", "-c", "cat /data/data; if echo x > /data/new; then exit 0; else exit 7; fi")
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: vol, Readonly: true}}
	id := e.run(sb, sbCfg, cfg)
	st := e.waitExited(e.rt, id)
	if st.ExitCode != 7 {
		t.Errorf("write to a read-only volume: exit %d, want 7 (refused)", st.ExitCode)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); err == nil {
		t.Error("the container wrote to a read-only volume")
	}
	b, _ := os.ReadFile(st.LogPath)
	if !strings.Contains(string(b), "stdout F from the host") {
		t.Errorf("log %q does not show the volume's file", b)
	}

	rw := containerConfig("rw", "sh", "-c", "echo x > /data/new")
	rw.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: vol}}
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, rw)); st.ExitCode != 0 {
		t.Errorf("write to a read-write volume: exit %d", st.ExitCode)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); err != nil {
		t.Errorf("read-write volume: %v", err)
	}
}

func TestAdoptAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("adopt")
	id := e.run(sb, sbCfg, containerConfig("sleeper", "sleep", "1000"))
	done := e.run(sb, sbCfg, containerConfig("short", "sh", "-c", "exit 4"))
	e.waitExited(e.rt, done)

	// Drop the runtime as a kill -9 of the agent would: nothing is
	// stopped. A new runtime over the same state adopts both.
	e.rt = nil
	rt := e.open()
	cs, err := rt.ListContainers(e.ctx, &runtimeapi.ContainerFilter{PodSandboxId: sb})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("adopted %d containers, want 2", len(cs))
	}
	st, err := rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("adopted container is %v, want RUNNING", st.Status.State)
	}
	if st, _ := rt.ContainerStatus(e.ctx, done, false); st.Status.ExitCode != 4 {
		t.Errorf("exit code of the container that ended before the restart: %d, want 4", st.Status.ExitCode)
	}
	// It ends while no runtime watches: its exit code is kept.
	pid := rt.pid(id)
	if pid <= 0 {
		t.Fatal("no pid for the running container")
	}
	rt = nil
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	e.rt = e.open()
	if _, err := e.rt.waitExit(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err = e.rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Status.ExitCode != 137 {
		t.Errorf("killed container: %v exit %d, want EXITED 137", st.Status.State, st.Status.ExitCode)
	}
}

func TestStopContainerGrace(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("stop")
	// Traps SIGTERM and exits 0 on it.
	polite := e.run(sb, sbCfg, containerConfig("polite", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"))
	// Ignores SIGTERM: only SIGKILL ends it.
	stubborn := e.run(sb, sbCfg, containerConfig("stubborn", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"))
	for _, id := range []string{polite, stubborn} {
		waitLog(t, e.rt, id, "ready")
	}
	if err := e.rt.StopContainer(e.ctx, polite, 30); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.ContainerStatus(e.ctx, polite, false); st.Status.ExitCode != 0 {
		t.Errorf("SIGTERM-handling container: exit %d, want 0", st.Status.ExitCode)
	}
	if err := e.rt.StopContainer(e.ctx, stubborn, 1); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.ContainerStatus(e.ctx, stubborn, false); st.Status.ExitCode != 137 {
		t.Errorf("SIGTERM-ignoring container: exit %d, want 137", st.Status.ExitCode)
	}
	// Stopping a stopped container is not an error.
	if err := e.rt.StopContainer(e.ctx, stubborn, 1); err != nil {
		t.Error(err)
	}
}

// waitLog waits for text to appear in a container's log.
func waitLog(t *testing.T, rt *Runtime, id, text string) {
	t.Helper()
	st, err := rt.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(st.Status.LogPath)
		if strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s never showed %q: %q", id, text, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type remoteSize = remotecommandserver.TerminalSize

// nopCloser is a WriteCloser over a buffer.
type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("exec")
	cfg := containerConfig("c", "sleep", "1000")
	cfg.Envs = []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hello")}}
	id := e.run(sb, sbCfg, cfg)

	out, _, err := e.rt.ExecSync(e.ctx, id, []string{"sh", "-c", "echo $GREETING"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("ExecSync = %q, %v; want hello", out, err)
	}
	_, _, err = e.rt.ExecSync(e.ctx, id, []string{"sh", "-c", "exit 5"}, 10*time.Second)
	var ee utilexec.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 5 {
		t.Errorf("ExecSync exit 5: %v", err)
	}

	s := e.rt.Streamer()
	t.Run("pipes", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := s.Exec(e.ctx, id, []string{"sh", "-c", "read x; echo got $x; echo err >&2; exit 2"},
			strings.NewReader("line\n"), nopCloser{&stdout}, nopCloser{&stderr}, false, nil)
		if !errors.As(err, &ee) || ee.ExitStatus() != 2 {
			t.Errorf("exit: %v, want code 2", err)
		}
		if stdout.String() != "got line\n" || stderr.String() != "err\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})
	t.Run("tty", func(t *testing.T) {
		pr, pw := io.Pipe()
		var out bytes.Buffer
		resize := make(chan remoteSize, 1)
		resize <- remoteSize{Width: 123, Height: 45}
		close(resize)
		go func() {
			// The shell reads its commands from the terminal. runc
			// sizes the container's console from the host terminal
			// just after the process starts, so a command queued
			// before then can see 0 0: wait for the resize first.
			_, _ = io.WriteString(pw, "sleep 1; stty size; tty; exit 6\n")
		}()
		err := s.Exec(e.ctx, id, []string{"sh"}, pr, nopCloser{&out}, nil, true, resize)
		pw.Close()
		if !errors.As(err, &ee) || ee.ExitStatus() != 6 {
			t.Errorf("exit: %v, want code 6 (output %q)", err, out.String())
		}
		if !strings.Contains(out.String(), "45 123") || !strings.Contains(out.String(), "/dev/pts/") {
			t.Errorf("tty output %q lacks the size 45 123 and a /dev/pts terminal", out.String())
		}
	})
}

// TestStartCost prints (never asserts) what a bare `runc run` costs next
// to this runtime's create and start, for the node agent's bench.
func TestStartCost(t *testing.T) {
	e := newTestEnv(t)
	const n = 5
	floor, err := RuncFloor(e.ctx, "", e.dir, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(floor.Runs) != n || floor.Lanes != 2 || floor.LanesWall <= 0 || floor.LanesCPU <= 0 {
		t.Fatalf("floor ran %d times one after another (want %d) and %d lanes for %v, %v CPU (want 2 lanes, some time)",
			len(floor.Runs), n, floor.Lanes, floor.LanesWall, floor.LanesCPU)
	}
	var bare time.Duration
	for _, d := range floor.Runs {
		bare += d
	}
	sb, sbCfg := e.sandbox("cost")
	var create, start time.Duration
	for i := range n {
		t0 := time.Now()
		id, err := e.rt.CreateContainer(e.ctx, sb, containerConfig("c"+strconv.Itoa(i), "true"), sbCfg)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := e.rt.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		create, start = create+t1.Sub(t0), start+time.Since(t1)
		if st := e.waitExited(e.rt, id); st.ExitCode != 0 {
			t.Fatalf("true exited %d", st.ExitCode)
		}
	}
	t.Logf("bare runc run (create, start, exit, delete): %v each, %v CPU each; %d in 2 lanes: %v, %v CPU", bare/n, floor.CPU/n, n, floor.LanesWall, floor.LanesCPU)
	t.Logf("CreateContainer %v + StartContainer %v = %v each", create/n, start/n, (create+start)/n)
}

func TestReopenContainerLog(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("rotate")
	id := e.run(sb, sbCfg, containerConfig("c", "sh", "-c", "while :; do echo tick; sleep 0.1; done"))
	waitLog(t, e.rt, id, "tick")
	st, _ := e.rt.ContainerStatus(e.ctx, id, false)
	// Rotate as the kubelet's log manager does: rename, then reopen.
	if err := os.Rename(st.Status.LogPath, st.Status.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.ReopenContainerLog(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e.rt, id, "stdout F tick")
	if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.ReopenContainerLog(e.ctx, id); err == nil {
		t.Error("reopened the log of a stopped container")
	}
}
