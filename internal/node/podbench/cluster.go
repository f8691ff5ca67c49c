package podbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is the `volplane up` child a bench runs against.
type Cluster struct {
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
	log     *os.File
	client  kubernetes.Interface
}

// Client is a client of the cluster's API, allowed 1000 requests/s
// (burst 2000) so that a bench's parallel creates do not queue in it.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// StartCluster starts `exe up` on dataDir with free loopback ports (and
// upArgs after them) and waits until pods can run: the kubeconfig exists,
// the default service account exists and the node is Ready. The caller
// stops a non-nil Cluster even when err is set, then cleans dataDir up
// with leftovers.Clean.
func StartCluster(ctx context.Context, exe, dataDir, nodeName string, timeout time.Duration, upArgs ...string) (*Cluster, error) {
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
	c := &Cluster{dataDir: dataDir, log: log, exited: make(chan struct{})}
	// Not CommandContext: the child is stopped with SIGTERM, not killed.
	args := append([]string{"up", "--data-dir", dataDir, "--listen", listen,
		"--kubelet-port", kubeletPort, "--node-name", nodeName}, upArgs...)
	c.cmd = exec.Command(exe, args...)
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
		return c, fmt.Errorf("%w\n--- last lines of %s:\n%s", err, log.Name(), c.Tail(30))
	}
	return c, nil
}

// waitReady polls until the kubeconfig, the default service account and
// a Ready node exist. The timeout detects a hang; it is no target.
func (c *Cluster) waitReady(ctx context.Context, nodeName string, timeout time.Duration) error {
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
			// Protobuf, as a controller talks to the API: in JSON the
			// bench's creates and its watches' events cost the child
			// up's API server more CPU than its own clients' do.
			cfg.ContentType = runtime.ContentTypeProtobuf
			cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
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

// Stop sends SIGTERM and waits for the child (SIGKILL after a minute).
func (c *Cluster) Stop() error {
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

// Tail is the last n lines of the child's output.
func (c *Cluster) Tail(n int) string {
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
