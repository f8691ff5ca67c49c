package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/node/leftovers"
)

var volplaneBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	volplaneBin = os.Getenv("VOLPLANE_BIN")
	if volplaneBin == "" {
		dir, err := os.MkdirTemp("", "volplane-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		volplaneBin = filepath.Join(dir, "volplane")
		build := exec.Command("go", "build", "-o", volplaneBin, "./cmd/volplane")
		build.Dir = "../.."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building volplane:", err)
			return 1
		}
	}
	return m.Run()
}

// kubectlBin is the dispatcher kubectl unless $KUBECTL names another.
func kubectlBin() string {
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	return "kubectl"
}

// Oldest and newest installed kubectl clients.
const (
	kubectlOldest = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
	kubectlNewest = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
)

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePort returns a loopback port nobody listens on, for an agent's
// kubelet API: several agents share this machine.
func freePort(t testing.TB) string {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

// Process is a running volplane subcommand.
type Process struct {
	t       testing.TB
	Args    []string
	DataDir string
	Listen  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
	err    error
}

// Kubeconfig is the admin kubeconfig the process writes once ready.
func (p *Process) Kubeconfig() string { return filepath.Join(p.DataDir, "kubeconfig") }

// startProcess starts `volplane <args>` and stops it at the end of the
// test. Its output is kept and printed if the test fails, or always when
// VOLPLANE_E2E_OUTPUT is set.
func startProcess(t testing.TB, dataDir, listen string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, Args: args, DataDir: dataDir, Listen: listen}
	p.start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() || os.Getenv("VOLPLANE_E2E_OUTPUT") != "" {
			t.Logf("volplane %s output:\n%s", strings.Join(args, " "), p.Output())
		}
	})
	return p
}

func (p *Process) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = &bytes.Buffer{}
	p.cmd = exec.Command(volplaneBin, p.Args...)
	w := &lockedWriter{mu: &p.mu, w: p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start volplane: %v", err)
	}
	p.exited = make(chan struct{})
	cmd, exited := p.cmd, p.exited
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// WaitReady waits until the kubeconfig appears, failing the test if the
// process exits first or does not become ready within the limit (a hang,
// not a speed target).
func (p *Process) WaitReady() time.Duration {
	p.t.Helper()
	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p.Kubeconfig()); err == nil {
			return time.Since(start)
		}
		if p.Exited() {
			p.t.Fatalf("volplane exited before it was ready: %v\n%s", p.err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("volplane not ready after 3m:\n%s", p.Output())
	return 0
}

// Signal sends sig and waits for the process to exit; it returns how long
// that took and the exit error.
func (p *Process) Signal(sig syscall.Signal) (time.Duration, error) {
	p.t.Helper()
	if p.Exited() {
		return 0, p.err
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("volplane did not exit within 60s of %v", sig)
	}
	return time.Since(start), p.err
}

// Stop ends the process with SIGTERM (idempotent).
func (p *Process) Stop() {
	if p.cmd != nil && !p.Exited() {
		p.Signal(syscall.SIGTERM)
	}
}

// Restart stops the process and starts it again with the same arguments.
func (p *Process) Restart() {
	p.t.Helper()
	p.Stop()
	p.start()
}

// WaitExit waits for the process to exit on its own.
func (p *Process) WaitExit(limit time.Duration) error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(limit):
		p.t.Fatalf("volplane still running after %v:\n%s", limit, p.Output())
		return nil
	}
}

// startUp starts `volplane up` on a fresh data dir and waits for it.
func startUp(t testing.TB, extra ...string) *Process {
	t.Helper()
	dir := upDataDir(t)
	// Runs after the process has stopped (cleanups run last first).
	t.Cleanup(func() { cleanupNode(t, dir) })
	listen := freeAddr(t)
	args := append([]string{"up", "--data-dir", dir, "--listen", listen, "--node-name", "e2e-node", "--kubelet-port", freePort(t)}, extra...)
	p := startProcess(t, dir, listen, args...)
	p.WaitReady()
	return p
}

// upDataDir is a fresh data dir for `volplane up`, removed when the test
// ends. It is short: up's node agent keeps unix sockets under it, as a
// kubelet does (kubelet/plugins_registry/<driver>-reg.sock), and a path
// from t.TempDir, named after the test, can pass the 107 bytes a socket
// path may have.
func upDataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove data dir: %v", err)
		}
	})
	return dir
}

// Kubectl runs kubectl (the dispatcher, or $KUBECTL) against p.
func (p *Process) Kubectl(args ...string) (string, error) {
	return p.KubectlWith(kubectlBin(), "", args...)
}

// KubectlWith runs a given kubectl binary with stdin.
func (p *Process) KubectlWith(bin, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.Kubeconfig())
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), err
	}
	return out.String(), nil
}

// MustKubectl runs kubectl and fails t on error. t is the running
// (sub)test: FailNow may only be called from its goroutine.
func (p *Process) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Apply applies a manifest with the dispatcher kubectl and fails t on
// error.
func (p *Process) Apply(t testing.TB, manifest string, args ...string) string {
	t.Helper()
	out, err := p.KubectlWith(kubectlBin(), manifest, append([]string{"apply", "-f", "-"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// REST is the admin client configuration.
func (p *Process) REST() *rest.Config {
	p.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", p.Kubeconfig())
	if err != nil {
		p.t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg
}

// Client is an admin clientset.
func (p *Process) Client() kubernetes.Interface {
	p.t.Helper()
	cs, err := kubernetes.NewForConfig(p.REST())
	if err != nil {
		p.t.Fatal(err)
	}
	return cs
}

// eventually polls cond until it returns nil or the limit passes, then
// fails with the last error. The limit detects a hang; it is no speed
// target.
func eventually(t testing.TB, limit time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cleanupNode undoes what a node agent under dataDir leaves on purpose
// when it stops (pods keep running, volumes stay mounted): containers,
// their monitors, sandbox cgroups and every mount under dataDir.
func cleanupNode(t testing.TB, dataDir string) {
	if err := leftovers.Clean("runc", dataDir); err != nil {
		t.Errorf("cleanup of %s: %v", dataDir, err)
	}
}

// WaitPodsAccepted waits until pods can be created and run: the node is
// Ready and the default namespace's service account exists (the
// kubeconfig appears as soon as the API answers, a little before).
func (p *Process) WaitPodsAccepted(t testing.TB) {
	t.Helper()
	eventually(t, 2*time.Minute, func() error {
		if _, err := p.Kubectl("get", "serviceaccount", "default"); err != nil {
			return err
		}
		out, err := p.Kubectl("get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "True") {
			return fmt.Errorf("no node is Ready: %q", out)
		}
		return nil
	})
}
