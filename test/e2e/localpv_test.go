package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/localpv"
)

// TestLocalProvisioner runs `volplane up --local-discovery-dir` and
// drives the local static provisioner with real tmpfs mounts and the real
// kubectl: the class exists; a new mount point becomes an Available local
// PV pinned to the node; a claim of the class and a pod bind it (through
// the scheduler's delayed binding) and the pod writes into it; deleting
// pod and claim scrubs the volume and it comes back as a new Available PV
// without the file; unmounting it deletes the unbound PV.
func TestLocalProvisioner(t *testing.T) {
	disc, err := os.MkdirTemp("", "vp-disks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(disc); err != nil {
			t.Errorf("remove discovery dir: %v", err)
		}
	})
	// Runs before the removal, after the process stopped.
	t.Cleanup(func() { hostopstest.Teardown(t, disc) })

	p := startUp(t, "--local-discovery-dir", disc)
	p.WaitPodsAccepted(t)
	const node, class = "e2e-node", localpv.DefaultStorageClass

	// The provisioner's own identity: what it needs and nothing else.
	for _, c := range []struct {
		verb, resource string
		want           string
	}{
		{"create", "persistentvolumes", "yes"}, {"delete", "persistentvolumes", "yes"}, {"watch", "persistentvolumes", "yes"},
		{"get", "storageclasses.storage.k8s.io", "yes"}, {"get", "nodes", "yes"}, {"list", "pods", "yes"}, {"create", "events", "yes"},
		{"update", "persistentvolumes", "no"}, {"create", "persistentvolumeclaims", "no"}, {"update", "nodes", "no"},
		{"get", "secrets", "no"}, {"create", "pods", "no"}, {"create", "storageclasses.storage.k8s.io", "no"},
	} {
		out, _ := p.Kubectl("auth", "can-i", c.verb, c.resource, "--as", "system:volplane:local-provisioner")
		if strings.TrimSpace(out) != c.want {
			t.Errorf("local provisioner may %s %s: %q, want %s", c.verb, c.resource, strings.TrimSpace(out), c.want)
		}
	}

	if got := p.MustKubectl(t, "get", "storageclass", class, "-o", "jsonpath={.provisioner} {.volumeBindingMode}"); got != "kubernetes.io/no-provisioner WaitForFirstConsumer" {
		t.Fatalf("class %s: %q", class, got)
	}

	vol := filepath.Join(disc, "vol1")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	pv := localpv.PVName("vol1", node, class)
	pvState := func() string {
		out, _ := p.Kubectl("get", "pv", pv, "-o", "jsonpath={.status.phase} {.metadata.uid}")
		return strings.TrimSpace(out)
	}
	eventually(t, time.Minute, func() error {
		if s := pvState(); !strings.HasPrefix(s, "Available ") {
			return fmt.Errorf("PV %s of the new mount point: %q", pv, s)
		}
		return nil
	})
	firstUID := strings.Fields(pvState())[1]
	got := p.MustKubectl(t, "get", "pv", pv, "-o", `jsonpath={.spec.local.path} {.spec.capacity.storage} {.spec.storageClassName} {.spec.persistentVolumeReclaimPolicy} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].key}={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} {.metadata.annotations.pv\.kubernetes\.io/provisioned-by}`)
	wantPrefix := fmt.Sprintf("%s 64Mi %s Delete kubernetes.io/hostname=%s local-volume-provisioner-%s-", vol, class, node, node)
	if !strings.HasPrefix(got, wantPrefix) {
		t.Fatalf("PV %s:\n got %q\nwant %q...", pv, got, wantPrefix)
	}

	p.Apply(t, `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lpv-claim}
spec:
  storageClassName: `+class+`
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: lpv-pod}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "mkdir -p /data/dir && echo hello > /data/dir/file && sleep 3600"]
    volumeMounts: [{name: v, mountPath: /data}]
  volumes:
  - name: v
    persistentVolumeClaim: {claimName: lpv-claim}
`)
	written := filepath.Join(vol, "dir", "file")
	eventually(t, 2*time.Minute, func() error {
		if _, err := os.Stat(written); err != nil {
			return fmt.Errorf("the pod's file in the volume: %w", err)
		}
		return nil
	})
	if got := p.MustKubectl(t, "get", "pvc", "lpv-claim", "-o", "jsonpath={.status.phase} {.spec.volumeName}"); got != "Bound "+pv {
		t.Fatalf("claim: %q, want Bound to %s", got, pv)
	}

	p.MustKubectl(t, "delete", "pod", "lpv-pod", "--wait=false")
	p.MustKubectl(t, "delete", "pvc", "lpv-claim", "--wait=false")
	eventually(t, 2*time.Minute, func() error {
		s := pvState()
		if !strings.HasPrefix(s, "Available ") || strings.HasSuffix(s, firstUID) {
			return fmt.Errorf("PV %s after its claim is deleted: %q, want a new Available PV", pv, s)
		}
		return nil
	})
	if entries, err := os.ReadDir(vol); err != nil || len(entries) != 0 {
		t.Errorf("the recycled volume holds %v (%v), want nothing", entries, err)
	}
	events, err := p.Client().CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pv})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, e := range events.Items {
		if e.Source.Component == localpv.EventComponent {
			reasons[e.Reason] = true
		}
	}
	if !reasons[localpv.ReasonCleanup] || !reasons[localpv.ReasonDeleted] {
		t.Errorf("provisioner events on %s: %v, want %s and %s", pv, reasons, localpv.ReasonCleanup, localpv.ReasonDeleted)
	}

	if err := unix.Unmount(vol, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if s := pvState(); s != "" {
			return fmt.Errorf("PV %s of an unmounted, unbound volume: %q", pv, s)
		}
		return nil
	})
}

// TestLocalProvisionerJoiningNodes: `volplane server` writes the
// provisioner's kubeconfig, two joining `volplane node` agents run the
// provisioner with it, each makes the PV of its own mount point pinned to
// itself, and a pod whose claim only node-b's volume can serve runs on
// node-b.
func TestLocalProvisionerJoiningNodes(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	server := startProcess(t, dir, listen, "server", "--data-dir", dir, "--listen", listen)
	server.WaitReady()
	bootstrap := filepath.Join(dir, "bootstrap-kubeconfig")
	provisionerKubeconfig := filepath.Join(dir, "local-provisioner-kubeconfig")
	eventually(t, time.Minute, func() error {
		_, err := os.Stat(provisionerKubeconfig)
		return err
	})
	// On joining nodes the class is the admin's to make.
	server.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-storage}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
`)

	vols := map[string]string{}
	for _, n := range []string{"node-a", "node-b"} {
		nodeDir := t.TempDir()
		t.Cleanup(func() { cleanupNode(t, nodeDir) })
		disc := filepath.Join(nodeDir, "disks")
		vol := filepath.Join(disc, "vol")
		if err := os.MkdirAll(vol, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hostopstest.Teardown(t, disc) })
		if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=16m"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		vols[n] = vol
		startProcess(t, nodeDir, "", "node", "--kubeconfig", bootstrap, "--root-dir", filepath.Join(nodeDir, "kubelet"),
			"--node-name", n, "--kubelet-port", freePort(t),
			"--local-discovery-dir", disc, "--local-provisioner-kubeconfig", provisionerKubeconfig)
	}
	for n, vol := range vols {
		pv := localpv.PVName("vol", n, "local-storage")
		eventually(t, 2*time.Minute, func() error {
			out, err := server.Kubectl("get", "pv", pv, "-o", "jsonpath={.status.phase} {.spec.local.path} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}")
			if want := "Available " + vol + " " + n; out != want {
				return fmt.Errorf("PV %s: %q (%v), want %q", pv, out, err, want)
			}
			return nil
		})
	}

	// node-a's volume goes: its unbound PV with it.
	if err := unix.Unmount(vols["node-a"], 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if out, err := server.Kubectl("get", "pv", localpv.PVName("vol", "node-a", "local-storage"), "-o", "name"); err == nil {
			return fmt.Errorf("node-a's PV is still there: %q", out)
		}
		return nil
	})

	server.WaitPodsAccepted(t)
	server.Apply(t, `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: joined-claim}
spec:
  storageClassName: local-storage
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 8Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: joined-pod}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo from-b > /data/f && sleep 3600"]
    volumeMounts: [{name: v, mountPath: /data}]
  volumes:
  - name: v
    persistentVolumeClaim: {claimName: joined-claim}
`)
	eventually(t, 2*time.Minute, func() error {
		if _, err := os.Stat(filepath.Join(vols["node-b"], "f")); err != nil {
			return fmt.Errorf("the pod's file on node-b's volume: %w", err)
		}
		return nil
	})
	if got := server.MustKubectl(t, "get", "pod", "joined-pod", "-o", "jsonpath={.spec.nodeName}"); got != "node-b" {
		t.Errorf("pod on %q, want node-b", got)
	}
	server.MustKubectl(t, "delete", "pod", "joined-pod")
}
