package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/localpv"
)

// TestLocalVolumesOnNodes: `volplane server` and two joining `volplane
// node` agents, one cluster for all cases, which run side by side (each
// has its own class). Local PVs pin the pods that use them: two claims on
// two nodes' PVs put each pod on its PV's node; a claim larger than
// node-a's PV puts its pod on node-b; a pod with two claims whose only
// PVs sit on different nodes stays Pending with upstream's
// FailedScheduling wording; and a StatefulSet of 3 with
// volumeClaimTemplates on the local static provisioner's PVs (tmpfs
// mounts under each node's discovery dir) keeps each pod on its volume's
// node and its data across scaling down and up, and a StatefulSet whose
// persistentVolumeClaimRetentionPolicy deletes claims when scaled loses
// the removed pods' claims, whose PVs the provisioner recycles.
func TestLocalVolumesOnNodes(t *testing.T) {
	dir := t.TempDir()
	volDir := t.TempDir() // hand-made local PVs' directories
	listen := freeAddr(t)
	server := startProcess(t, dir, listen, "server", "--data-dir", dir, "--listen", listen)
	server.WaitReady()
	bootstrap := filepath.Join(dir, "bootstrap-kubeconfig")
	provisionerKubeconfig := filepath.Join(dir, "local-provisioner-kubeconfig")
	eventually(t, time.Minute, func() error {
		_, err := os.Stat(provisionerKubeconfig)
		return err
	})

	// The provisioner's volumes: two on node-a, one on node-b.
	const class = localpv.DefaultStorageClass
	var disks []localDisk
	for n, bases := range map[string][]string{"node-a": {"s0", "s1"}, "node-b": {"s0"}} {
		nodeDir := t.TempDir()
		t.Cleanup(func() { cleanupNode(t, nodeDir) })
		disc := filepath.Join(nodeDir, "disks")
		t.Cleanup(func() { hostopstest.Teardown(t, disc) })
		for _, b := range bases {
			vol := filepath.Join(disc, b)
			if err := os.MkdirAll(vol, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=16m"); err != nil {
				t.Fatalf("mount tmpfs: %v", err)
			}
			disks = append(disks, localDisk{n, b, vol})
		}
		startProcess(t, nodeDir, "", "node", "--kubeconfig", bootstrap, "--root-dir", filepath.Join(nodeDir, "kubelet"),
			"--node-name", n, "--kubelet-port", freePort(t),
			"--local-discovery-dir", disc, "--local-provisioner-kubeconfig", provisionerKubeconfig)
	}
	server.Apply(t, wffcClass(class)+"---\n"+wffcClass("mn-two")+"---\n"+wffcClass("mn-bigger")+"---\n"+wffcClass("mn-split"))
	eventually(t, 2*time.Minute, func() error {
		out, err := server.Kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if err != nil || strings.TrimSpace(out) != "node-a=True node-b=True" {
			return fmt.Errorf("nodes: %q (%v), want node-a and node-b Ready", out, err)
		}
		return nil
	})
	server.WaitPodsAccepted(t)

	mkdir := func(t *testing.T, name string) string {
		t.Helper()
		d := filepath.Join(volDir, name)
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("cases", func(t *testing.T) {
		t.Run("two-pvs-two-nodes", func(t *testing.T) {
			t.Parallel()
			pvNode := map[string]string{"two-a": "node-a", "two-b": "node-b"}
			m := pinnedPV("two-a", "mn-two", "1Gi", mkdir(t, "two-a"), "node-a") + "---\n" + pinnedPV("two-b", "mn-two", "1Gi", mkdir(t, "two-b"), "node-b")
			for _, c := range []string{"x", "y"} {
				m += "---\n" + localClaimManifest("two-"+c, "mn-two", "512Mi") + "---\n" + claimsPodManifest("two-user-"+c, "echo "+c+" > /data/who", "two-"+c)
			}
			server.Apply(t, m)
			seen := map[string]bool{}
			for _, c := range []string{"x", "y"} {
				node := waitRunning(t, server, "two-user-"+c)
				pv := server.MustKubectl(t, "get", "pvc", "two-"+c, "-o", "jsonpath={.spec.volumeName}")
				if pvNode[pv] != node {
					t.Errorf("pod two-user-%s is on %q, its claim's PV %q is pinned to %q", c, node, pv, pvNode[pv])
				}
				seen[pv] = true
				waitFile(t, filepath.Join(volDir, pv, "who"), c)
			}
			if len(seen) != 2 {
				t.Errorf("both claims got %v, want both PVs used", seen)
			}
		})

		t.Run("claim-larger-than-node-a-pv", func(t *testing.T) {
			t.Parallel()
			server.Apply(t, pinnedPV("small-a", "mn-bigger", "1Gi", mkdir(t, "small-a"), "node-a")+"---\n"+
				pinnedPV("big-b", "mn-bigger", "2Gi", mkdir(t, "big-b"), "node-b")+"---\n"+
				localClaimManifest("bigger", "mn-bigger", "1500Mi")+"---\n"+
				claimsPodManifest("bigger-user", "echo big > /data/f", "bigger"))
			if node := waitRunning(t, server, "bigger-user"); node != "node-b" {
				t.Errorf("bigger-user is on %q, want node-b (node-a's PV is too small)", node)
			}
			if got := server.MustKubectl(t, "get", "pvc", "bigger", "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Bound/big-b" {
				t.Errorf("claim bigger: %q, want Bound/big-b", got)
			}
			if got := server.MustKubectl(t, "get", "pv", "small-a", "-o", "jsonpath={.status.phase}"); got != "Available" {
				t.Errorf("small-a: %q, want Available", got)
			}
			waitFile(t, filepath.Join(volDir, "big-b", "f"), "big")
		})

		t.Run("two-claims-pvs-on-different-nodes", func(t *testing.T) {
			t.Parallel()
			server.Apply(t, pinnedPV("split-a", "mn-split", "1Gi", mkdir(t, "split-a"), "node-a")+"---\n"+
				pinnedPV("split-b", "mn-split", "1Gi", mkdir(t, "split-b"), "node-b")+"---\n"+
				localClaimManifest("split-1", "mn-split", "1Gi")+"---\n"+
				localClaimManifest("split-2", "mn-split", "1Gi")+"---\n"+
				claimsPodManifest("split-user", "true", "split-1", "split-2"))
			const want = "0/2 nodes are available: 2 " + "node(s) didn't find available persistent volumes to bind."
			eventually(t, 2*time.Minute, func() error {
				out, err := server.Kubectl("get", "events", "--field-selector", "involvedObject.name=split-user,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
				if err != nil || !strings.Contains(out, want) {
					return fmt.Errorf("FailedScheduling of split-user: %q (%v), want %q", out, err, want)
				}
				return nil
			})
			if got := server.MustKubectl(t, "get", "pod", "split-user", "-o", "jsonpath={.status.phase}/{.spec.nodeName}"); got != "Pending/" {
				t.Errorf("split-user: %q, want Pending and unscheduled", got)
			}
			for _, c := range []string{"split-1", "split-2"} {
				if got := server.MustKubectl(t, "get", "pvc", c, "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Pending/" {
					t.Errorf("claim %s: %q, want Pending and unbound", c, got)
				}
			}
			if got := server.MustKubectl(t, "get", "pv", "split-a", "split-b", "-o", "jsonpath={.items[*].status.phase}"); got != "Available Available" {
				t.Errorf("split PVs: %q, want both Available", got)
			}
		})

		t.Run("statefulset", func(t *testing.T) {
			t.Parallel()
			testStatefulSet(t, server, class, disks)
		})
	})
}

// localDisk is a tmpfs mount under a node's discovery dir.
type localDisk struct{ node, base, path string }

// testStatefulSet runs the StatefulSet cases on the provisioner's PVs
// of class, one per disk.
func testStatefulSet(t *testing.T, server *Process, class string, disks []localDisk) {
	type vol struct{ node, path string }
	vols := map[string]vol{}
	for _, d := range disks {
		vols[localpv.PVName(d.base, d.node, class)] = vol{d.node, d.path}
	}
	pvUID := func(pv string) string {
		out, _ := server.Kubectl("get", "pv", pv, "-o", "jsonpath={.status.phase} {.metadata.uid}")
		return strings.TrimSpace(out)
	}
	waitAvailable := func(old map[string]string) {
		t.Helper()
		for pv := range old {
			eventually(t, 2*time.Minute, func() error {
				s := pvUID(pv)
				if !strings.HasPrefix(s, "Available ") || (old[pv] != "" && strings.HasSuffix(s, old[pv])) {
					return fmt.Errorf("PV %s: %q, want a fresh Available PV (old uid %q)", pv, s, old[pv])
				}
				return nil
			})
			if entries, err := os.ReadDir(vols[pv].path); err != nil || len(entries) != 0 {
				t.Errorf("available PV %s's volume holds %v (%v), want nothing", pv, entries, err)
			}
		}
	}
	all := map[string]string{}
	for pv := range vols {
		all[pv] = ""
	}
	waitAvailable(all)

	// claimVolumes checks that ordinal i's pod of set runs on its claim's
	// PV's node and returns the PV names by ordinal.
	claimVolumes := func(set string, n int) []string {
		t.Helper()
		pvs := make([]string, n)
		for i := range n {
			pod := fmt.Sprintf("%s-%d", set, i)
			node := waitRunning(t, server, pod)
			got := server.MustKubectl(t, "get", "pvc", "data-"+pod, "-o", "jsonpath={.status.phase}/{.spec.volumeName}")
			pv, ok := strings.CutPrefix(got, "Bound/")
			if !ok || vols[pv].node == "" {
				t.Fatalf("claim data-%s: %q, want Bound to a provisioner PV", pod, got)
			}
			if vols[pv].node != node {
				t.Errorf("pod %s is on %q, its PV %s is pinned to %q", pod, node, pv, vols[pv].node)
			}
			pvs[i] = pv
		}
		return pvs
	}
	waitGone := func(kind string, names ...string) {
		t.Helper()
		eventually(t, 2*time.Minute, func() error {
			out, _ := server.Kubectl(append([]string{"get", kind, "--ignore-not-found", "-o", "name"}, names...)...)
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("still there: %q", out)
			}
			return nil
		})
	}

	server.Apply(t, statefulSetManifest("web", class, 3, ""))
	pvs := claimVolumes("web", 3)
	for i, pv := range pvs {
		waitFile(t, filepath.Join(vols[pv].path, "ord"), fmt.Sprint(i))
	}

	server.MustKubectl(t, "scale", "statefulset", "web", "--replicas=1")
	waitGone("pod", "web-1", "web-2")
	for i, pv := range pvs {
		if got := server.MustKubectl(t, "get", "pvc", fmt.Sprintf("data-web-%d", i), "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Bound/"+pv {
			t.Errorf("claim data-web-%d after scaling down: %q, want Bound/%s", i, got, pv)
		}
	}
	server.MustKubectl(t, "scale", "statefulset", "web", "--replicas=3")
	if again := claimVolumes("web", 3); strings.Join(again, " ") != strings.Join(pvs, " ") {
		t.Errorf("volumes after scaling up: %v, want %v", again, pvs)
	}
	// The pods that came back found what they wrote before.
	for i := 1; i < 3; i++ {
		waitFile(t, filepath.Join(vols[pvs[i]].path, "found"), fmt.Sprint(i))
	}

	// The claims outlive the set; deleting them recycles the PVs.
	old := map[string]string{}
	for _, pv := range pvs {
		old[pv] = strings.Fields(pvUID(pv))[1]
	}
	server.MustKubectl(t, "delete", "statefulset", "web")
	waitGone("pod", "web-0", "web-1", "web-2")
	server.MustKubectl(t, "delete", "pvc", "data-web-0", "data-web-1", "data-web-2", "--wait=false")
	waitAvailable(old)

	// whenScaled: Delete: scaling down deletes the removed pods' claims.
	server.Apply(t, statefulSetManifest("keep", class, 3, "whenScaled: Delete"))
	pvs = claimVolumes("keep", 3)
	old = map[string]string{}
	for _, pv := range pvs[1:] {
		old[pv] = strings.Fields(pvUID(pv))[1]
	}
	server.MustKubectl(t, "scale", "statefulset", "keep", "--replicas=1")
	waitGone("pvc", "data-keep-1", "data-keep-2")
	waitAvailable(old)
	if got := server.MustKubectl(t, "get", "pvc", "data-keep-0", "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Bound/"+pvs[0] {
		t.Errorf("claim data-keep-0 of the remaining pod: %q, want Bound/%s", got, pvs[0])
	}
	waitFile(t, filepath.Join(vols[pvs[0]].path, "ord"), "0")
}

func wffcClass(name string) string {
	return fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %s}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
`, name)
}

// pinnedPV is a `local` PV of class at path, pinned to node.
func pinnedPV(name, class, size, path, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %s}
spec:
  storageClassName: %s
  capacity: {storage: %s}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  local: {path: %s}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, name, class, size, path, node)
}

func localClaimManifest(name, class, size string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s}
spec:
  storageClassName: %s
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: %s}}
`, name, class, size)
}

// claimsPodManifest is a pod that runs script with claim i mounted at /data
// (the first) and /data1, /data2, ... (the others), then sleeps.
func claimsPodManifest(name, script string, claims ...string) string {
	var mounts, volumes string
	for i, c := range claims {
		path := "/data"
		if i > 0 {
			path += fmt.Sprint(i)
		}
		mounts += fmt.Sprintf("    - {name: v%d, mountPath: %s}\n", i, path)
		volumes += fmt.Sprintf("  - {name: v%d, persistentVolumeClaim: {claimName: %s}}\n", i, c)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "%s && exec sleep 3600"]
    volumeMounts:
%s  volumes:
%s`, name, script, mounts, volumes)
}

// statefulSetManifest is a parallel StatefulSet whose pods keep their
// ordinal in /data/ord, and copy it to /data/found when it was there
// before they started.
func statefulSetManifest(name, class string, replicas int, retention string) string {
	policy := ""
	if retention != "" {
		policy = "  persistentVolumeClaimRetentionPolicy: {" + retention + "}\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  serviceName: %[1]s
  replicas: %[2]d
  podManagementPolicy: Parallel
%[4]s  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        command: [sh, -c, 'o=$${POD_NAME##*-}; if [ -f /data/ord ]; then cp /data/ord /data/found; else echo $$o > /data/ord; fi; exec sleep 3600']
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: %[3]s
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 8Mi}}
`, name, replicas, class, policy)
}

// waitRunning waits until pod runs and returns its node.
func waitRunning(t *testing.T, p *Process, pod string) string {
	t.Helper()
	var node string
	eventually(t, 3*time.Minute, func() error {
		out, err := p.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}/{.spec.nodeName}")
		phase, n, _ := strings.Cut(out, "/")
		if err != nil || phase != "Running" {
			ev, _ := p.Kubectl("get", "events", "--field-selector", "involvedObject.name="+pod, "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
			return fmt.Errorf("pod %s is %q (%v); events:\n%s", pod, out, err, ev)
		}
		node = n
		return nil
	})
	return node
}

// waitFile waits until path holds want (a line).
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(b)) != want {
			return fmt.Errorf("%s: %q (%v), want %q", path, b, err, want)
		}
		return nil
	})
}
