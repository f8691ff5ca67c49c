package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMultiNode: `volplane server` and two `volplane node` agents on
// this machine, each with its own root dir, kubelet port and name,
// joined with the bootstrap token the server writes. Each node obtains
// its certificate through the CSR API, pods land on each, logs come
// through each node's kubelet API, and one node's credential cannot read
// a secret that only a pod on the other node uses.
func TestMultiNode(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	server := startProcess(t, dir, listen, "server", "--data-dir", dir, "--listen", listen)
	server.WaitReady()
	bootstrap := filepath.Join(dir, "bootstrap-kubeconfig")
	eventually(t, time.Minute, func() error {
		_, err := os.Stat(bootstrap)
		return err
	})

	nodes := []string{"node-a", "node-b"}
	for _, n := range nodes {
		nodeDir := t.TempDir()
		t.Cleanup(func() { cleanupNode(t, nodeDir) })
		startProcess(t, nodeDir, "", "node", "--kubeconfig", bootstrap, "--root-dir", filepath.Join(nodeDir, "kubelet"),
			"--node-name", n, "--kubelet-port", freePort(t))
	}
	eventually(t, 2*time.Minute, func() error {
		out, err := server.Kubectl("get", "nodes", "--no-headers")
		if err != nil {
			return err
		}
		ready := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[1] == "Ready" {
				ready++
			}
		}
		if ready != len(nodes) {
			return fmt.Errorf("nodes: %q", out)
		}
		return nil
	})
	csrs := server.MustKubectl(t, "get", "csr", "-o", `jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type}{"\n"}{end}`)
	for _, n := range nodes {
		if !strings.Contains(csrs, "kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:") || !strings.Contains(csrs, "kubernetes.io/kubelet-serving system:node:"+n+" Approved") {
			t.Fatalf("CSRs of %s:\n%s", n, csrs)
		}
	}
	server.WaitPodsAccepted(t)

	server.MustKubectl(t, "create", "secret", "generic", "only-b", "--from-literal=k=v")
	for _, n := range nodes {
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: on-%s}
spec:
  nodeSelector: {kubernetes.io/hostname: %s}
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo running on %s; exec sleep 3600"]
`, n, n, n)
		if n == "node-b" {
			manifest += `    env:
    - name: K
      valueFrom: {secretKeyRef: {name: only-b, key: k}}
`
		}
		server.Apply(t, manifest)
	}
	for _, n := range nodes {
		eventually(t, 2*time.Minute, func() error {
			out, err := server.Kubectl("get", "pod", "on-"+n, "-o", "jsonpath={.spec.nodeName} {.status.phase}")
			if err != nil {
				return err
			}
			if out != n+" Running" {
				return fmt.Errorf("pod on-%s: %q", n, out)
			}
			return nil
		})
		if out := server.MustKubectl(t, "logs", "on-"+n); out != "running on "+n+"\n" {
			t.Fatalf("logs of on-%s through its node: %q", n, out)
		}
	}

	// node-a's own credential: the secret is referenced only by a pod on
	// node-b, so the Node authorizer refuses node-a.
	nodeA := strings.TrimSuffix(strings.Split(server.MustKubectl(t, "get", "node", "node-a", "-o", "name"), "\n")[0], "")
	if nodeA != "node/node-a" {
		t.Fatalf("node-a: %q", nodeA)
	}
	var aKubeconfig string
	for _, p := range mustGlob(t, filepath.Join(os.TempDir(), "TestMultiNode*", "*", "kubelet", "kubeconfig")) {
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), "system:node:node-a") {
			aKubeconfig = p
		}
	}
	if aKubeconfig == "" {
		t.Fatal("node-a wrote no kubeconfig of its own")
	}
	_, err := server.KubectlWith(kubectlNewest, "", "--kubeconfig", aKubeconfig, "get", "secret", "only-b")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("node-a read a secret only node-b's pod uses: %v", err)
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
