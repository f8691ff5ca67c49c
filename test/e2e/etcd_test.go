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
// client URL. The ports are picked free, but another process may take one
// before etcd binds it (the busy e2e run makes many connections), so a
// start whose etcd exits is tried again on new ports.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed (Debian package etcd-server; `make deps` installs it): %v", err)
	}
	for attempt := 1; ; attempt++ {
		client, ok := tryStartEtcd(t, bin)
		if ok {
			return client
		}
		if attempt == 3 {
			t.Fatal("etcd did not start in 3 attempts")
		}
	}
}

func tryStartEtcd(t *testing.T, bin string) (string, bool) {
	t.Helper()
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
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	showLog := func() {
		out, _ := os.ReadFile(logf.Name())
		t.Logf("etcd output:\n%s", out)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			logf.Close()
			showLog()
			return "", false
		default:
		}
		if resp, err := http.Get(client + "/health"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "true") {
				break
			}
		}
		if time.Now().After(deadline) {
			showLog()
			t.Fatal("etcd not healthy after 1m")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logf.Close()
		if t.Failed() {
			showLog()
		}
	})
	return client, true
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
	if out := b.MustKubectl(t, "get", "configmap", "shared", "-o", "jsonpath={.data.from}"); out != "a" {
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
