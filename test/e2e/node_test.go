package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNode: `volplane up` runs a node agent. Its Node is Ready with the
// embedded release as its version, carries the labels and annotation the
// storage system relies on, renews its Lease, and the scheduler places
// pods on it. The agent is system:node:<name>: the Node authorizer keeps
// it from what its pods do not reference.
func TestNode(t *testing.T) {
	p := startUp(t)
	const node = "e2e-node"

	t.Run("ready", func(t *testing.T) {
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("get", "node", node, "--no-headers")
			if err != nil {
				return err
			}
			if f := strings.Fields(out); len(f) < 5 || f[1] != "Ready" || !strings.HasPrefix(f[4], "v1.37.") {
				return fmt.Errorf("node: %q", out)
			}
			return nil
		})
		labels := p.MustKubectl(t, "get", "node", node, "-o", `jsonpath={.metadata.labels.kubernetes\.io/hostname} {.metadata.labels.kubernetes\.io/os} {.metadata.annotations.volumes\.kubernetes\.io/controller-managed-attach-detach}`)
		if labels != node+" linux true" {
			t.Fatalf("labels and annotation: %q", labels)
		}
		port := p.MustKubectl(t, "get", "node", node, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}")
		if port == "" || port == "0" {
			t.Fatalf("kubelet port %q", port)
		}
		holder := p.MustKubectl(t, "-n", "kube-node-lease", "get", "lease", node, "-o", "jsonpath={.spec.holderIdentity}")
		if holder != node {
			t.Fatalf("lease holder %q", holder)
		}
	})

	t.Run("identity", func(t *testing.T) {
		nodeKubeconfig := filepath.Join(p.DataDir, "kubelet", "kubeconfig")
		whoami, err := p.KubectlWith(kubectlNewest, "", "--kubeconfig", nodeKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		if err != nil {
			t.Fatal(err)
		}
		if whoami != "system:node:"+node {
			t.Fatalf("the node is %q", whoami)
		}
		p.MustKubectl(t, "create", "secret", "generic", "unreferenced", "--from-literal=k=v")
		_, err = p.KubectlWith(kubectlNewest, "", "--kubeconfig", nodeKubeconfig, "get", "secret", "unreferenced")
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Fatalf("the node read a secret no pod of it references: %v", err)
		}
		_, err = p.KubectlWith(kubectlNewest, "", "--kubeconfig", nodeKubeconfig, "get", "pv", "--watch-only", "--request-timeout=2s")
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Fatalf("the node may watch PVs: %v", err)
		}
	})

	t.Run("scheduled", func(t *testing.T) {
		p.WaitPodsAccepted(t)
		p.MustKubectl(t, "run", "sched", "--image=busybox", "--restart=Never", "--", "sh", "-c", "sleep 1")
		eventually(t, time.Minute, func() error {
			out, err := p.Kubectl("get", "pod", "sched", "-o", "jsonpath={.spec.nodeName}")
			if err != nil {
				return err
			}
			if out != node {
				return fmt.Errorf("pod on node %q", out)
			}
			return nil
		})
	})
}
