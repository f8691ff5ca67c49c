package podbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// cluster is the `volplane up` child the bench runs against.
type cluster struct {
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
	log     *os.File
	client  kubernetes.Interface
}

// startCluster starts `exe up` on dataDir with free loopback ports and
// waits until pods can run: the kubeconfig exists, the default service
// account exists and the node is Ready.
func startCluster(ctx context.Context, exe, dataDir, nodeName string, timeout time.Duration) (*cluster, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	kubelet, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, kubeletPort, _ := net.SplitHostPort(kubelet)
	log, err := os.Create(filepath.Join(dataDir, "up.log"))
	if err != nil {
		return nil, err
	}
	c := &cluster{dataDir: dataDir, log: log, exited: make(chan struct{})}
	// Not CommandContext: the child is stopped with SIGTERM, not killed.
	c.cmd = exec.Command(exe, "up", "--data-dir", dataDir, "--listen", listen,
		"--kubelet-port", kubeletPort, "--node-name", nodeName)
	c.cmd.Stdout, c.cmd.Stderr = log, log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s up: %w", exe, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(ctx, nodeName, timeout); err != nil {
		return c, fmt.Errorf("%w\n--- last lines of %s:\n%s", err, log.Name(), c.tail(30))
	}
	return c, nil
}

// waitReady polls until the kubeconfig, the default service account and
// a Ready node exist. The timeout detects a hang; it is no target.
func (c *cluster) waitReady(ctx context.Context, nodeName string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	kubeconfig := filepath.Join(c.dataDir, "kubeconfig")
	var last error
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("volplane up exited before it was ready: %v", c.err)
		case <-ctx.Done():
			return fmt.Errorf("volplane up not ready after %v: %w (last: %v)", timeout, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
		if c.client == nil {
			if _, err := os.Stat(kubeconfig); err != nil {
				last = err
				continue
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			// The burst's parallel creates must not queue in the client.
			cfg.QPS, cfg.Burst = 1000, 2000
			if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
				return err
			}
		}
		if _, err := c.client.CoreV1().ServiceAccounts(v1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = err
			continue
		}
		node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			last = err
			continue
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == v1.NodeReady && cond.Status == v1.ConditionTrue {
				return nil
			}
		}
		last = fmt.Errorf("node %s not Ready", nodeName)
	}
}

// stop sends SIGTERM and waits for the child (SIGKILL after a minute).
func (c *cluster) stop() error {
	defer c.log.Close()
	select {
	case <-c.exited:
		return c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("volplane up did not exit within 1m of SIGTERM; killed")
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && ee.Exited() {
		return fmt.Errorf("volplane up: %w", c.err)
	}
	return nil
}

// tail is the last n lines of the child's output.
func (c *cluster) tail(n int) string {
	b, err := os.ReadFile(c.log.Name())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cleanupNode undoes what a stopped node agent under dataDir leaves on
// purpose (pods keep running, volumes stay mounted): it kills and deletes
// the runc containers of its runtime, kills the conmon monitors whose
// command line names dataDir, removes the empty cgroups of its sandboxes,
// and unmounts every mount under dataDir, deepest first. It touches
// nothing that is not dataDir's.
func cleanupNode(runc, dataDir string) error {
	var errs []error
	roots, _ := filepath.Glob(filepath.Join(dataDir, "*", "runtime", "runc"))
	for _, root := range roots {
		out, err := exec.Command(runc, "--root", root, "list", "-q").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("runc --root %s list: %w", root, err))
		}
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command(runc, "--root", root, "kill", id, "KILL").Run()
			if err := exec.Command(runc, "--root", root, "delete", "-f", id).Run(); err != nil {
				errs = append(errs, fmt.Errorf("runc delete -f %s: %w", id, err))
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(cmdline, []byte("conmon\x00")) && !bytes.Contains(cmdline, []byte("/conmon\x00")) {
			continue
		}
		if !bytes.Contains(cmdline, []byte(dataDir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	// The runtime removes a sandbox's cgroup (/volplane/<sandbox id> when
	// the agent gives no parent) only when the agent removes the sandbox;
	// those it never got to are left empty. Only directories named by this
	// data dir's sandbox records are removed, and only empty ones can be.
	records, _ := filepath.Glob(filepath.Join(dataDir, "*", "runtime", "sandboxes", "*.json"))
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, rec := range records {
		id := strings.TrimSuffix(filepath.Base(rec), ".json")
		for _, h := range append(hierarchies, "/sys/fs/cgroup") {
			_ = os.Remove(filepath.Join(h, "volplane", id))
		}
	}
	mounts, err := mountsUnder(dataDir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	slices.SortStableFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	return mounts, nil
}
