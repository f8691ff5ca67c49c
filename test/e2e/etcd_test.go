package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// startEtcd runs Debian's etcd on loopback for the test and returns its
// client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed (Debian package etcd-server; `make deps` installs it): %v", err)
	}
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	eventually(t, time.Minute, func() error {
		resp, err := http.Get(client + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "true") {
			return fmt.Errorf("etcd not healthy: %s", body)
		}
		return nil
	})
	return client
}

// TestExternalEtcdTwoServers runs two `volplane server` processes on one
// Debian etcd. They serve the same objects; the second joined with a copy
// of the first's pki/. Only one holds volplane's controller Lease, and
// when it stops the other takes over.
func TestExternalEtcdTwoServers(t *testing.T) {
	etcd := startEtcd(t)

	dirA, dirB := t.TempDir(), t.TempDir()
	listenA := freeAddr(t)
	a := startProcess(t, dirA, listenA, "server", "--data-dir", dirA, "--listen", listenA, "--etcd-servers", etcd)
	a.WaitReady()

	if err := os.CopyFS(filepath.Join(dirB, "pki"), os.DirFS(filepath.Join(dirA, "pki"))); err != nil {
		t.Fatal(err)
	}
	listenB := freeAddr(t)
	b := startProcess(t, dirB, listenB, "server", "--data-dir", dirB, "--listen", listenB, "--etcd-servers", etcd)
	b.WaitReady()

	ctx := context.Background()
	csA, csB := a.Client(), b.Client()
	if _, err := csA.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Data: map[string]string{"from": "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := csB.CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{})
	if err != nil || got.Data["from"] != "a" {
		t.Fatalf("server B reads %v, %v; want server A's object", got, err)
	}
	// Both servers' kubectl see one cluster.
	if out := b.MustKubectl("get", "configmap", "shared", "-o", "jsonpath={.data.from}"); out != "a" {
		t.Fatalf("kubectl via B: %q", out)
	}

	var survivor *Process = b
	holder := func() string {
		l, err := survivor.Client().CoordinationV1().Leases("kube-system").Get(ctx, "volplane-controller-manager", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	leaderOf := func(p *Process, id string) bool {
		return id != "" && strings.Contains(p.Output(), `msg="became leader"`) && strings.Contains(p.Output(), "identity="+id)
	}
	var first string
	eventually(t, time.Minute, func() error {
		first = holder()
		if leaderOf(a, first) == leaderOf(b, first) {
			return fmt.Errorf("lease holder %q: leader in A %v, in B %v", first, leaderOf(a, first), leaderOf(b, first))
		}
		return nil
	})
	leader, other := a, b
	if leaderOf(b, first) {
		leader, other = b, a
	}
	if strings.Count(other.Output(), `msg="became leader"`) != 0 {
		t.Fatal("both servers ran volplane's controllers")
	}
	survivor = other
	if _, err := leader.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("leader exit: %v", err)
	}
	eventually(t, time.Minute, func() error {
		h := holder()
		if h == first || !leaderOf(other, h) {
			return fmt.Errorf("lease still held by %q", h)
		}
		return nil
	})
	// kube-controller-manager elects its own leader through its Lease.
	if _, err := other.Client().CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
		t.Fatalf("kube-controller-manager lease: %v", err)
	}
}
