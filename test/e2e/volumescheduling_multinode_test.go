package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVolumeSchedulingMultiNode: `volplane server` and two `volplane
// node` agents. A pod whose claim only fits the local volume of node-b
// lands on node-b and binds it (node-a's smaller volume does not fit),
// and a pod with two claims whose only volumes sit one on each node
// stays Pending with upstream's conflict event.
func TestVolumeSchedulingMultiNode(t *testing.T) {
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
		out, err := server.Kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.labels.kubernetes\.io/hostname}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "node-a=True") || !strings.Contains(out, "node-b=True") {
			return fmt.Errorf("nodes: %q", out)
		}
		return nil
	})
	server.WaitPodsAccepted(t)

	disks := t.TempDir()
	pv := func(name, size, node string) string {
		path := filepath.Join(disks, name)
		if err := os.Mkdir(path, 0o777); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %s}
spec:
  storageClassName: e2e-local
  capacity: {storage: %s}
  accessModes: [ReadWriteOnce]
  local: {path: %s}
  nodeAffinity: {required: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [%s]}]}]}}
---
`, name, size, path, node)
	}
	claimAndPod := func(pod string, claims map[string]string) string {
		var b strings.Builder
		var vols, mounts []string
		for c, size := range claims {
			fmt.Fprintf(&b, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s}
spec: {storageClassName: e2e-local, accessModes: [ReadWriteOnce], resources: {requests: {storage: %s}}}
---
`, c, size)
			vols = append(vols, fmt.Sprintf("{name: %s, persistentVolumeClaim: {claimName: %s}}", c, c))
			mounts = append(mounts, fmt.Sprintf("{name: %s, mountPath: /%s}", c, c))
		}
		fmt.Fprintf(&b, `apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [%s]}]
  volumes: [%s]
`, pod, strings.Join(mounts, ", "), strings.Join(vols, ", "))
		return b.String()
	}
	server.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: e2e-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
`)

	t.Run("placed-by-its-volume", func(t *testing.T) {
		server.Apply(t, pv("a-1g", "1Gi", "node-a")+pv("b-2g", "2Gi", "node-b")+claimAndPod("big", map[string]string{"big-claim": "2Gi"}))
		eventually(t, 2*time.Minute, func() error {
			out, _ := server.Kubectl("get", "pod", "big", "-o", "jsonpath={.status.phase}/{.spec.nodeName}")
			if out != "Running/node-b" {
				ev, _ := server.Kubectl("get", "events", "--field-selector", "involvedObject.name=big", "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
				return fmt.Errorf("pod big is %q, want Running/node-b; events:\n%s", out, ev)
			}
			return nil
		})
		if got := server.MustKubectl(t, "get", "pvc", "big-claim", "-o", "jsonpath={.spec.volumeName}"); got != "b-2g" {
			t.Fatalf("big-claim bound to %q, want b-2g", got)
		}
		if got := server.MustKubectl(t, "get", "pv", "a-1g", "-o", "jsonpath={.status.phase}"); got != "Available" {
			t.Fatalf("a-1g is %q, want Available", got)
		}
		server.MustKubectl(t, "delete", "pod", "big", "--wait=true")
	})

	t.Run("volumes-on-two-nodes", func(t *testing.T) {
		server.Apply(t, pv("a-split", "5Gi", "node-a")+pv("b-split", "5Gi", "node-b")+
			claimAndPod("split", map[string]string{"split-1": "5Gi", "split-2": "5Gi"}))
		want := "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind."
		eventually(t, 2*time.Minute, func() error {
			out, err := server.Kubectl("get", "events", "--field-selector", "involvedObject.name=split,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
			if err != nil || !strings.Contains(out, want) {
				return fmt.Errorf("FailedScheduling of split: %q (%v), want %q", out, err, want)
			}
			return nil
		})
		if got := server.MustKubectl(t, "get", "pod", "split", "-o", "jsonpath={.status.phase}/{.spec.nodeName}"); got != "Pending/" {
			t.Fatalf("pod split: %q", got)
		}
		for _, c := range []string{"split-1", "split-2"} {
			if got := server.MustKubectl(t, "get", "pvc", c, "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Pending/" {
				t.Errorf("%s: %q, want Pending and unbound", c, got)
			}
		}
	})
}
