package runtime

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// helperEnv names the state directory a re-executed test binary runs a
// container from (see TestMain).
const helperEnv = "VOLPLANE_RUNTIME_TEST_HELPER"

// TestMain lets TestAdoptAfterKill9 run an agent stand-in in a process of
// its own: it creates a sandbox and a long-running container, prints the
// container's ID and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir))
	}
	os.Exit(m.Run())
}

func helper(dir string) int {
	ctx := context.Background()
	rt, err := New(ctx, Config{StateDir: filepath.Join(dir, "runtime"), ImagesDir: filepath.Join(dir, "images")})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "killed", Namespace: "default", Uid: "u"},
		LogDirectory: filepath.Join(dir, "logs"),
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err == nil {
		var id string
		id, err = rt.CreateContainer(ctx, sb, containerConfig("c", "sh", "-c", "echo started; sleep 1000"), sbCfg)
		if err == nil {
			err = rt.StartContainer(ctx, id)
		}
		if err == nil {
			fmt.Println("id:", id)
			select {} // until kill -9
		}
	}
	fmt.Println("error:", err)
	return 1
}

func TestAdoptAfterKill9(t *testing.T) {
	e := newTestEnv(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+e.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("helper: %q, %v", line, err)
	}
	// The "agent" dies without a chance to clean up.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: ")
	if !ok {
		t.Fatalf("helper said %q", line)
	}
	e.rt = e.open()
	st, err := e.rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after kill -9 of its runtime the container is %v, want RUNNING", st.Status.State)
	}
	waitLog(t, e.rt, id, "started")
	// Still running for real: exec into it.
	if out, _, err := e.rt.ExecSync(e.ctx, id, []string{"echo", "alive"}, 0); err != nil || strings.TrimSpace(string(out)) != "alive" {
		t.Errorf("exec after adoption: %q, %v", out, err)
	}
	if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if st := e.waitExited(e.rt, id); st.ExitCode != 137 {
		t.Errorf("exit %d, want 137", st.ExitCode)
	}
}

func TestMonitorGone(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("orphan")
	id := e.run(sb, sbCfg, containerConfig("c", "sleep", "1000"))
	b, err := os.ReadFile(filepath.Join(e.rt.bundle(id), "conmon.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for e.rt.conmonAlive(id) { // until the kernel has taken it away
		time.Sleep(10 * time.Millisecond)
	}
	// The next runtime finds the container without its monitor: it kills
	// it and records exit code 255.
	e.rt = e.open()
	st, err := e.rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Status.ExitCode != 255 {
		t.Errorf("container whose conmon died: %v exit %d, want EXITED 255", st.Status.State, st.Status.ExitCode)
	}
	rs, err := e.rt.runcState(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Status != "stopped" { // runc kill does not wait
		time.Sleep(10 * time.Millisecond)
		if rs, err = e.rt.runcState(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnreadableRecordsSkipped(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("good")
	id := e.run(sb, sbCfg, containerConfig("c", "true"))
	e.waitExited(e.rt, id)
	if err := os.WriteFile(e.rt.sandboxFile("torn"), []byte(`{"id": "torn", "con`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bundle without a record (the agent died mid-create) is removed.
	orphan := e.rt.bundle("orphan")
	if err := os.MkdirAll(filepath.Join(orphan, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := e.open()
	if sbs, _ := rt.ListPodSandbox(e.ctx, nil); len(sbs) != 1 || sbs[0].Id != sb {
		t.Errorf("sandboxes %v, want only %s", sbs, sb)
	}
	if st, err := rt.ContainerStatus(e.ctx, id, false); err != nil || st.Status.ExitCode != 0 {
		t.Errorf("container next to a torn record: %v, %v", st, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("bundle without a record: %v, want removed", err)
	}
	_ = os.Remove(e.rt.sandboxFile("torn"))
}
