package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVolumeScheduling drives volplane's binding plugin in the embedded
// scheduler on one `volplane up` with the real kubectl: the scheduler's
// identity may write what the plugin writes; a claim of a
// WaitForFirstConsumer class waits for its pod, the pod is placed on the
// node of the local PV it gets, the claim binds to that PV and the pod's
// writes land in the PV's directory; a pod whose only volume sits on a
// node that does not exist stays Pending with upstream's reasons.
func TestVolumeScheduling(t *testing.T) {
	p := startUp(t)
	p.WaitPodsAccepted(t)
	nodeName := strings.TrimSpace(p.MustKubectl(t, "get", "nodes", "-o", `jsonpath={.items[0].metadata.labels.kubernetes\.io/hostname}`))
	if nodeName == "" {
		t.Fatal("the node has no kubernetes.io/hostname label")
	}

	t.Run("scheduler-rbac", func(t *testing.T) {
		// upstream's system:volume-scheduler role, bound to the
		// scheduler's user: PreBind's writes.
		for _, res := range []string{"persistentvolumes", "persistentvolumeclaims"} {
			out, _ := p.Kubectl("auth", "can-i", "update", res, "--as", "system:kube-scheduler")
			if strings.TrimSpace(out) != "yes" {
				t.Errorf("system:kube-scheduler may not update %s: %q", res, out)
			}
		}
		for _, res := range []string{"storageclasses.storage.k8s.io", "csistoragecapacities.storage.k8s.io", "csidrivers.storage.k8s.io", "csinodes.storage.k8s.io"} {
			out, _ := p.Kubectl("auth", "can-i", "watch", res, "--as", "system:kube-scheduler")
			if strings.TrimSpace(out) != "yes" {
				t.Errorf("system:kube-scheduler may not watch %s: %q", res, out)
			}
		}
		// It must not write statuses: the PV controller completes bindings.
		if out, _ := p.Kubectl("auth", "can-i", "update", "persistentvolumes", "--subresource=status", "--as", "system:kube-scheduler"); strings.TrimSpace(out) != "no" {
			t.Errorf("system:kube-scheduler may update persistentvolumes/status: %q", out)
		}
	})

	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: e2e-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
`)

	t.Run("local-pv-delayed-binding", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "disk")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		p.Apply(t, localPVManifest("e2e-local-pv", dir, nodeName)+`
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: local-claim}
spec:
  storageClassName: e2e-local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`)
		// The claim waits for a consumer, with the PV controller's event.
		eventually(t, time.Minute, func() error {
			out, err := p.Kubectl("get", "events", "--field-selector", "involvedObject.name=local-claim,reason=WaitForFirstConsumer", "-o", "jsonpath={.items[*].message}")
			if err != nil || !strings.Contains(out, "waiting for first consumer to be created before binding") {
				return fmt.Errorf("WaitForFirstConsumer event on local-claim: %q, %v", out, err)
			}
			return nil
		})
		if got := p.MustKubectl(t, "get", "pvc", "local-claim", "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Pending/" {
			t.Fatalf("claim without a consumer: %q, want Pending and no volume", got)
		}

		p.Apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: local-user}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo written-by-the-pod > /data/out && exec sleep 3600"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes:
  - {name: d, persistentVolumeClaim: {claimName: local-claim}}
`)
		node := nodeNameOf(p, t)
		eventually(t, 3*time.Minute, func() error {
			out, err := p.Kubectl("get", "pod", "local-user", "-o", "jsonpath={.status.phase}/{.spec.nodeName}")
			if err != nil || out != "Running/"+node {
				ev, _ := p.Kubectl("get", "events", "--field-selector", "involvedObject.name=local-user", "-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
				return fmt.Errorf("pod local-user is %q (%v); events:\n%s", out, err, ev)
			}
			return nil
		})
		if got := p.MustKubectl(t, "get", "pvc", "local-claim", "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Bound/e2e-local-pv" {
			t.Fatalf("claim after scheduling: %q, want Bound/e2e-local-pv", got)
		}
		// The scheduler's write, as upstream's: claimRef plus bound-by-controller.
		if got := p.MustKubectl(t, "get", "pv", "e2e-local-pv", "-o", `jsonpath={.status.phase}/{.spec.claimRef.name}/{.metadata.annotations.pv\.kubernetes\.io/bound-by-controller}`); got != "Bound/local-claim/yes" {
			t.Fatalf("volume after scheduling: %q", got)
		}
		eventually(t, time.Minute, func() error {
			b, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil || strings.TrimSpace(string(b)) != "written-by-the-pod" {
				return fmt.Errorf("the pod's file in the PV directory: %q, %v", b, err)
			}
			return nil
		})
		p.MustKubectl(t, "delete", "pod", "local-user", "--wait=true")
		p.MustKubectl(t, "delete", "pvc", "local-claim", "--wait=true")
		p.MustKubectl(t, "delete", "pv", "e2e-local-pv", "--wait=true")
	})

	t.Run("one-volume-two-pods", func(t *testing.T) {
		// Two pods, each with its own claim, and one volume that fits
		// both: one pod gets it, the other waits with upstream's reason
		// until a second volume appears (the PV event requeues it).
		dir := t.TempDir()
		for _, d := range []string{"a", "b"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
				t.Fatal(err)
			}
		}
		p.Apply(t, localPVManifest("only-pv", filepath.Join(dir, "a"), nodeName))
		for _, n := range []string{"a", "b"} {
			p.Apply(t, fmt.Sprintf(`
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: want-%[1]s}
spec:
  storageClassName: e2e-local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: wants-%[1]s}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: want-%[1]s}}]
`, n))
		}
		var winner, loser string
		eventually(t, 2*time.Minute, func() error {
			a := p.MustKubectl(t, "get", "pvc", "want-a", "-o", "jsonpath={.spec.volumeName}")
			b := p.MustKubectl(t, "get", "pvc", "want-b", "-o", "jsonpath={.spec.volumeName}")
			switch {
			case a == "only-pv" && b == "":
				winner, loser = "a", "b"
			case b == "only-pv" && a == "":
				winner, loser = "b", "a"
			default:
				return fmt.Errorf("want-a has %q, want-b %q: want one of them only-pv, the other none", a, b)
			}
			out, _ := p.Kubectl("get", "events", "--field-selector", "involvedObject.name=wants-"+loser+",reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
			if !strings.Contains(out, "1 node(s) didn't find available persistent volumes to bind") {
				return fmt.Errorf("FailedScheduling of wants-%s: %q", loser, out)
			}
			return nil
		})
		if got := p.MustKubectl(t, "get", "pod", "wants-"+winner, "-o", "jsonpath={.spec.nodeName}"); got != nodeNameOf(p, t) {
			t.Fatalf("wants-%s is on %q", winner, got)
		}
		p.Apply(t, localPVManifest("second-pv", filepath.Join(dir, "b"), nodeName))
		eventually(t, 2*time.Minute, func() error {
			out, _ := p.Kubectl("get", "pvc", "want-"+loser, "-o", "jsonpath={.status.phase}/{.spec.volumeName}")
			if out != "Bound/second-pv" {
				return fmt.Errorf("want-%s after a second volume appeared: %q", loser, out)
			}
			if node, _ := p.Kubectl("get", "pod", "wants-"+loser, "-o", "jsonpath={.spec.nodeName}"); node == "" {
				return fmt.Errorf("wants-%s is not scheduled", loser)
			}
			return nil
		})
		p.MustKubectl(t, "delete", "pod", "wants-a", "wants-b", "--wait=true")
	})

	t.Run("volume-on-missing-node", func(t *testing.T) {
		dir := t.TempDir()
		// An unbound claim whose only volume is on a node that does not
		// exist, and a claim bound to such a volume.
		p.Apply(t, localPVManifest("far-free-pv", filepath.Join(dir, "a"), "no-such-node")+`
---
`+localPVManifest("far-bound-pv", filepath.Join(dir, "b"), "no-such-node")+`
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: far-free}
spec:
  storageClassName: e2e-local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: far-bound}
spec:
  storageClassName: e2e-local
  volumeName: far-bound-pv
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`)
		eventually(t, time.Minute, func() error {
			if out, _ := p.Kubectl("get", "pvc", "far-bound", "-o", "jsonpath={.status.phase}"); out != "Bound" {
				return fmt.Errorf("far-bound is %q, want Bound (pre-bound by volumeName)", out)
			}
			return nil
		})
		for _, c := range []struct{ pod, claim, reason string }{
			{"far-free-user", "far-free", "1 node(s) didn't find available persistent volumes to bind"},
			{"far-bound-user", "far-bound", "1 node(s) didn't match PersistentVolume's node affinity"},
		} {
			p.Apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: %s}}]
`, c.pod, c.claim))
			eventually(t, 2*time.Minute, func() error {
				out, err := p.Kubectl("get", "events", "--field-selector", "involvedObject.name="+c.pod+",reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
				if err != nil || !strings.Contains(out, "0/1 nodes are available: "+c.reason+".") {
					return fmt.Errorf("FailedScheduling of %s: %q (%v), want %q", c.pod, out, err, c.reason)
				}
				return nil
			})
			if got := p.MustKubectl(t, "get", "pod", c.pod, "-o", "jsonpath={.status.phase}/{.spec.nodeName}"); got != "Pending/" {
				t.Errorf("pod %s: %q, want Pending and unscheduled", c.pod, got)
			}
		}
		if got := p.MustKubectl(t, "get", "pvc", "far-free", "-o", "jsonpath={.status.phase}/{.spec.volumeName}"); got != "Pending/" {
			t.Errorf("far-free: %q, want Pending and unbound", got)
		}
	})
}

// nodeNameOf is the name of p's one node.
func nodeNameOf(p *Process, t *testing.T) string {
	return strings.TrimSpace(p.MustKubectl(t, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))
}

// localPVManifest is a 1Gi `local` PV of class e2e-local at path, pinned
// by nodeAffinity to the node whose hostname label is node.
func localPVManifest(name, path, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %s}
spec:
  storageClassName: e2e-local
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  local: {path: %s}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, name, path, node)
}
