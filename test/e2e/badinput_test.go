package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInput: each mistake gets a one-line error naming the problem, a
// non-zero exit, and nothing half-written.
func TestBadInput(t *testing.T) {
	noKubeconfig := func(t *testing.T, dataDir string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dataDir, "kubeconfig")); err == nil {
			t.Fatal("a kubeconfig was written by a server that never became ready")
		}
	}
	run := func(t *testing.T, dataDir string, args ...string) string {
		t.Helper()
		p := startProcess(t, dataDir, "", args...)
		err := p.WaitExit(2 * time.Minute)
		if err == nil {
			t.Fatalf("volplane %v exited 0", args)
		}
		out := p.Output()
		last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
		if !strings.HasPrefix(last, "volplane: ") {
			t.Fatalf("last line %q is not a one-line error; output:\n%s", last, out)
		}
		return last
	}

	t.Run("occupied-port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		dir := t.TempDir()
		msg := run(t, dir, "up", "--data-dir", dir, "--listen", ln.Addr().String())
		if !strings.Contains(msg, ln.Addr().String()) || !strings.Contains(msg, "address already in use") {
			t.Fatalf("message %q does not name the occupied port", msg)
		}
		if _, err := os.Stat(filepath.Join(dir, "pki")); err == nil {
			t.Fatal("PKI written although the port was taken")
		}
		noKubeconfig(t, dir)
	})

	t.Run("unwritable-data-dir", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(file, "data")
		msg := run(t, dir, "up", "--data-dir", dir, "--listen", freeAddr(t))
		if !strings.Contains(msg, dir) || !strings.Contains(msg, "cannot be written") {
			t.Fatalf("message %q does not name the data dir", msg)
		}
	})

	t.Run("data-dir-in-use", func(t *testing.T) {
		p := startUp(t)
		msg := run(t, p.DataDir, "up", "--data-dir", p.DataDir, "--listen", freeAddr(t))
		if !strings.Contains(msg, "in use by another volplane") {
			t.Fatalf("message %q does not say the data dir is in use", msg)
		}
		// The running server and its kubeconfig are untouched.
		p.MustKubectl(t, "get", "namespaces")
	})

	t.Run("unreachable-etcd", func(t *testing.T) {
		dir := t.TempDir()
		etcd := "http://" + freeAddr(t)
		msg := run(t, dir, "server", "--data-dir", dir, "--listen", freeAddr(t), "--etcd-servers", etcd)
		if !strings.Contains(msg, etcd) || !strings.Contains(msg, "unreachable") {
			t.Fatalf("message %q does not name the etcd", msg)
		}
		if _, err := os.Stat(filepath.Join(dir, "pki")); err == nil {
			t.Fatal("PKI written for an etcd that never answered")
		}
		noKubeconfig(t, dir)
	})

	t.Run("pki-does-not-match-etcd", func(t *testing.T) {
		p := startUp(t)
		p.Stop()
		other := startUp(t)
		other.Stop()
		// Give the first data dir the second one's PKI.
		if err := os.RemoveAll(filepath.Join(p.DataDir, "pki")); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(p.DataDir, "pki"), os.DirFS(filepath.Join(other.DataDir, "pki"))); err != nil {
			t.Fatal(err)
		}
		msg := run(t, p.DataDir, "up", "--data-dir", p.DataDir, "--listen", freeAddr(t))
		if !strings.Contains(msg, "PKI does not match its etcd") {
			t.Fatalf("message %q does not name the mismatch", msg)
		}
		noKubeconfig(t, p.DataDir)
		// With no PKI at all, a fresh one is made but refused and not kept.
		if err := os.RemoveAll(filepath.Join(p.DataDir, "pki")); err != nil {
			t.Fatal(err)
		}
		msg = run(t, p.DataDir, "up", "--data-dir", p.DataDir, "--listen", freeAddr(t))
		if !strings.Contains(msg, "PKI does not match its etcd") {
			t.Fatalf("message %q does not name the mismatch", msg)
		}
		if _, err := os.Stat(filepath.Join(p.DataDir, "pki")); err == nil {
			t.Fatal("a refused PKI was kept")
		}
	})
}
