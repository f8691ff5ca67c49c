package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPods: `volplane up` runs pods as a one-node cluster does, driven
// by kubectl: kubectl run, logs and exec (with the oldest and newest
// clients and the dispatcher), a Deployment, a Job, a crash loop with
// growing backoff, graceful deletion, and a kill -9 of volplane after
// which the next `up` adopts the running containers.
func TestPods(t *testing.T) {
	p := startUp(t)
	clients := []struct{ name, bin string }{
		{"dispatcher", kubectlBin()},
		{"1.27", kubectlOldest},
		{"1.33", kubectlNewest},
	}
	waitPhase := func(t *testing.T, pod, want string) {
		t.Helper()
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}")
			if err != nil {
				return err
			}
			if out != want {
				return fmt.Errorf("pod %s is %q, want %s", pod, out, want)
			}
			return nil
		})
	}

	p.WaitPodsAccepted(t)
	p.MustKubectl(t, "run", "hello", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hello from volplane; exec sleep 3600")
	waitPhase(t, "hello", "Running")

	t.Run("logs-and-exec", func(t *testing.T) {
		for _, c := range clients {
			t.Run(c.name, func(t *testing.T) {
				out, err := p.KubectlWith(c.bin, "", "logs", "hello")
				if err != nil || out != "hello from volplane\n" {
					t.Fatalf("logs: %q %v", out, err)
				}
				out, err = p.KubectlWith(c.bin, "", "exec", "hello", "--", "sh", "-c", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace")
				if err != nil || !strings.HasSuffix(out, "\ndefault") || !strings.HasPrefix(out, "127.0.0.1:") {
					t.Fatalf("exec: %q %v", out, err)
				}
				out, err = p.KubectlWith(c.bin, "piped in", "exec", "-i", "hello", "--", "cat")
				if err != nil || out != "piped in" {
					t.Fatalf("exec -i: %q %v", out, err)
				}
				_, err = p.KubectlWith(c.bin, "", "exec", "hello", "--", "sh", "-c", "exit 7")
				if err == nil || !strings.Contains(err.Error(), "exit code 7") && !strings.Contains(err.Error(), "exit status 7") {
					t.Fatalf("exec's exit code lost: %v", err)
				}
			})
		}
		// A terminal: kubectl exec -it under script(1), which gives
		// kubectl a pty of its own.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "script", "-qec", kubectlNewest+" exec -it hello -- sh -c 'tty; echo cols=$(stty size)'", "/dev/null")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+p.Kubeconfig())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/dev/pts/") {
			t.Fatalf("exec -it: %q %v", out, err)
		}
	})

	t.Run("workloads", func(t *testing.T) {
		p.MustKubectl(t, "create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "3600")
		p.MustKubectl(t, "create", "job", "once", "--image=busybox", "--", "sh", "-c", "echo done")
		p.MustKubectl(t, "wait", "--for=condition=Available", "deployment/web", "--timeout=2m")
		p.MustKubectl(t, "wait", "--for=condition=Complete", "job/once", "--timeout=2m")
		out := p.MustKubectl(t, "get", "pods", "-l", "job-name=once", "--no-headers")
		if f := strings.Fields(out); len(f) < 3 || f[1] != "0/1" || f[2] != "Completed" {
			t.Fatalf("job pod: %q", out)
		}
		if out := p.MustKubectl(t, "logs", "job/once"); out != "done\n" {
			t.Fatalf("job log %q", out)
		}
	})

	t.Run("crashloop", func(t *testing.T) {
		p.MustKubectl(t, "run", "crash", "--image=busybox", "--", "sh", "-c", "echo attempt; exit 3")
		var restarts int
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("get", "pod", "crash", "--no-headers")
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			if len(f) < 4 || f[2] != "CrashLoopBackOff" {
				return fmt.Errorf("pod: %q", out)
			}
			restarts, _ = strconv.Atoi(f[3])
			if restarts < 2 {
				return fmt.Errorf("pod: %q", out)
			}
			return nil
		})
		st := p.MustKubectl(t, "get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].lastState.terminated.reason}")
		if st != "3 Error" {
			t.Fatalf("last state %q, want exit code 3, Error", st)
		}
		if out := p.MustKubectl(t, "logs", "crash", "--previous"); out != "attempt\n" {
			t.Fatalf("logs --previous %q", out)
		}
		events := p.MustKubectl(t, "get", "events", "--field-selector", "involvedObject.name=crash,reason=BackOff", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(events, "Back-off restarting failed container crash in pod crash_default(") {
			t.Fatalf("BackOff event: %q", events)
		}
	})

	t.Run("graceful-delete", func(t *testing.T) {
		// sh as PID 1 ignores SIGTERM: the grace period runs out.
		p.MustKubectl(t, "run", "stubborn", "--image=busybox", "--restart=Never", "--", "sh", "-c", "while true; do sleep 1; done")
		waitPhase(t, "stubborn", "Running")
		uid := p.MustKubectl(t, "get", "pod", "stubborn", "-o", "jsonpath={.metadata.uid}")
		start := time.Now()
		p.MustKubectl(t, "delete", "pod", "stubborn", "--grace-period=3")
		if took := time.Since(start); took < 3*time.Second {
			t.Fatalf("deleted after %v, before its grace period", took)
		}
		if _, err := os.Stat(filepath.Join(p.DataDir, "kubelet", "pods", uid)); !os.IsNotExist(err) {
			t.Fatalf("pod directory left behind: %v", err)
		}
		if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), uid) {
			t.Fatal("a mount of the deleted pod is left")
		}
	})

	t.Run("kill-9-and-adopt", func(t *testing.T) {
		before := p.MustKubectl(t, "get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
		if _, err := p.Signal(syscall.SIGKILL); err == nil {
			t.Fatal("volplane survived kill -9")
		}
		// The next up writes it again once its API answers.
		os.Remove(p.Kubeconfig())
		p.start()
		p.WaitReady()
		p.WaitPodsAccepted(t)
		waitPhase(t, "hello", "Running")
		eventually(t, time.Minute, func() error {
			after, err := p.Kubectl("get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}")
			if err != nil {
				return err
			}
			if after != before+" 0 true" {
				return fmt.Errorf("after restart %q, before %q", after, before)
			}
			return nil
		})
		out, err := p.Kubectl("exec", "hello", "--", "echo", "still here")
		if err != nil || out != "still here\n" {
			t.Fatalf("exec after adoption: %q %v", out, err)
		}
	})
}
