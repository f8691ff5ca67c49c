package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubectl drives one `volplane up` with the dispatcher kubectl and with
// the oldest and newest installed clients, each in a namespace of its own:
// what users and tools do with a Kubernetes API must just work.
func TestKubectl(t *testing.T) {
	p := startUp(t)
	clients := []struct{ name, bin string }{
		{"dispatcher", kubectlBin()},
		{"1.27", kubectlOldest},
		{"1.33", kubectlNewest},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath(c.bin); err != nil {
				t.Fatalf("kubectl %s is not installed at %s: %v", c.name, c.bin, err)
			}
			k := &kubectl{p: p, bin: c.bin, ns: "kc-" + strings.ReplaceAll(c.name, ".", "-")}
			k.must(t, "create", "namespace", k.ns)
			t.Run("apply", k.testApply)
			t.Run("get", k.testGet)
			t.Run("watch", k.testWatch)
			t.Run("describe", k.testDescribe)
			t.Run("edit", k.testEdit)
			t.Run("patch", k.testPatch)
			t.Run("wait-and-delete", k.testWaitDelete)
			t.Run("explain-and-discovery", k.testExplain)
			t.Run("label-annotate", k.testLabelAnnotate)
			t.Run("workloads", k.testWorkloads)
			t.Run("ownerref-gc", k.testGarbageCollection)
			t.Run("namespace-deletion", k.testNamespaceDeletion)
		})
	}
}

type kubectl struct {
	p   *Process
	bin string
	ns  string
}

func (k *kubectl) run(stdin string, args ...string) (string, error) {
	return k.p.KubectlWith(k.bin, stdin, args...)
}

func (k *kubectl) must(t *testing.T, args ...string) string {
	t.Helper()
	return k.mustIn(t, "", args...)
}

func (k *kubectl) mustIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := k.run(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (k *kubectl) n(args ...string) []string { return append([]string{"-n", k.ns}, args...) }

func contains(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

const claimManifest = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: %s
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

func (k *kubectl) testApply(t *testing.T) {
	// Client-side apply with default (strict, server-side) validation.
	out := k.mustIn(t, fmt.Sprintf(claimManifest, "csa"), k.n("apply", "-f", "-")...)
	contains(t, out, "persistentvolumeclaim/csa created")
	out = k.mustIn(t, fmt.Sprintf(claimManifest, "csa"), k.n("apply", "-f", "-")...)
	contains(t, out, "persistentvolumeclaim/csa unchanged")
	contains(t, k.must(t, k.n("get", "pvc", "csa", "-o", "jsonpath={.metadata.annotations}")...), "kubectl.kubernetes.io/last-applied-configuration")

	// Validation rejects an unknown field with the API's own message.
	bad := strings.Replace(fmt.Sprintf(claimManifest, "bad"), "accessModes", "accessModez", 1)
	if out, err := k.run(bad, k.n("apply", "-f", "-")...); err == nil || !strings.Contains(err.Error(), "accessModez") {
		t.Fatalf("apply of an unknown field: err=%v out=%s", err, out)
	}

	// Server-side apply records the field manager.
	out = k.mustIn(t, fmt.Sprintf(claimManifest, "ssa"), k.n("apply", "--server-side", "--field-manager=e2e", "-f", "-")...)
	contains(t, out, "persistentvolumeclaim/ssa serverside-applied")
	contains(t, k.must(t, k.n("get", "pvc", "ssa", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}")...), "e2e")
}

func (k *kubectl) testGet(t *testing.T) {
	out := k.must(t, k.n("get", "pvc", "-o", "wide")...)
	contains(t, out, "NAME", "STATUS", "VOLUMEMODE", "csa", "Pending")
	out = k.must(t, k.n("get", "pvc", "csa", "-o", "yaml")...)
	contains(t, out, "kind: PersistentVolumeClaim", "name: csa", "namespace: "+k.ns, "storage: 1Gi", "phase: Pending")
	// The admission plugins of the storage system run: the claim carries
	// the pvc-protection finalizer.
	contains(t, out, "kubernetes.io/pvc-protection")
}

func (k *kubectl) testWatch(t *testing.T) {
	k.must(t, k.n("create", "configmap", "watched", "--from-literal=v=1")...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, k.n("get", "configmap", "watched", "-w", "-o", "jsonpath={.data.v}{\"\\n\"}")...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.p.Kubeconfig())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "1" {
		t.Fatalf("watch: first line %q, want 1", lines.Text())
	}
	k.must(t, k.n("patch", "configmap", "watched", "-p", `{"data":{"v":"2"}}`)...)
	if !lines.Scan() || lines.Text() != "2" {
		t.Fatalf("watch: second line %q, want 2 (err %v)", lines.Text(), lines.Err())
	}
}

func (k *kubectl) testDescribe(t *testing.T) {
	out := k.must(t, k.n("describe", "pvc", "csa")...)
	contains(t, out, "Name:", "csa", "Namespace:", k.ns, "Status:", "Pending", "Access Modes:", "Finalizers:", "kubernetes.io/pvc-protection")
}

func (k *kubectl) testEdit(t *testing.T) {
	k.must(t, k.n("create", "configmap", "edited", "--from-literal=color=red")...)
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/color: red/color: blue/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(k.bin, k.n("edit", "configmap", "edited")...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.p.Kubeconfig(), "KUBE_EDITOR="+editor)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl edit: %v\n%s", err, out)
	}
	if got := k.must(t, k.n("get", "configmap", "edited", "-o", "jsonpath={.data.color}")...); got != "blue" {
		t.Fatalf("after edit color=%q, want blue", got)
	}
}

func (k *kubectl) testPatch(t *testing.T) {
	k.must(t, k.n("create", "configmap", "patched", "--from-literal=a=1")...)
	k.must(t, k.n("patch", "configmap", "patched", "--type=strategic", "-p", `{"data":{"b":"2"}}`)...)
	k.must(t, k.n("patch", "configmap", "patched", "--type=merge", "-p", `{"data":{"c":"3"}}`)...)
	k.must(t, k.n("patch", "configmap", "patched", "--type=json", "-p", `[{"op":"remove","path":"/data/a"}]`)...)
	got := k.must(t, k.n("get", "configmap", "patched", "-o", "jsonpath={.data}")...)
	if got != `{"b":"2","c":"3"}` {
		t.Fatalf("after patches data=%s", got)
	}
	// A bad patch is refused and changes nothing.
	if _, err := k.run("", k.n("patch", "configmap", "patched", "--type=json", "-p", `[{"op":"remove","path":"/data/zzz"}]`)...); err == nil {
		t.Fatal("json patch removing a missing path succeeded")
	}
	if got2 := k.must(t, k.n("get", "configmap", "patched", "-o", "jsonpath={.data}")...); got2 != got {
		t.Fatalf("failed patch changed data: %s", got2)
	}
}

func (k *kubectl) testWaitDelete(t *testing.T) {
	k.must(t, k.n("create", "configmap", "waited", "--from-literal=state=ready")...)
	out := k.must(t, k.n("wait", "configmap/waited", "--for=jsonpath={.data.state}=ready", "--timeout=60s")...)
	contains(t, out, "condition met")
	out = k.must(t, k.n("delete", "configmap", "waited", "--wait=true")...)
	contains(t, out, `configmap "waited" deleted`)
	if _, err := k.run("", k.n("get", "configmap", "waited")...); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("get after delete --wait: %v", err)
	}
}

func (k *kubectl) testExplain(t *testing.T) {
	out := k.must(t, "explain", "pvc.spec")
	contains(t, out, "PersistentVolumeClaimSpec", "accessModes", "storageClassName", "volumeName")
	out = k.must(t, "api-resources")
	for _, r := range []string{"persistentvolumes", "persistentvolumeclaims", "storageclasses", "volumeattachments", "csidrivers", "csinodes", "csistoragecapacities", "volumeattributesclasses"} {
		contains(t, out, r)
	}
}

func (k *kubectl) testLabelAnnotate(t *testing.T) {
	k.must(t, k.n("label", "pvc", "csa", "tier=gold")...)
	k.must(t, k.n("annotate", "pvc", "csa", "owner=e2e")...)
	if got := k.must(t, k.n("get", "pvc", "-l", "tier=gold", "-o", "name")...); strings.TrimSpace(got) != "persistentvolumeclaim/csa" {
		t.Fatalf("label selector found %q", got)
	}
	if got := k.must(t, k.n("get", "pvc", "csa", "-o", "jsonpath={.metadata.annotations.owner}")...); got != "e2e" {
		t.Fatalf("annotation owner=%q", got)
	}
	k.must(t, k.n("label", "pvc", "csa", "tier-")...)
	if got := k.must(t, k.n("get", "pvc", "-l", "tier=gold", "-o", "name")...); got != "" {
		t.Fatalf("label still selects %q", got)
	}
}

const workloads = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox
        command: [sleep, "3600"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: c
        image: busybox
        command: [sleep, "3600"]
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
`

// The non-storage controllers of kube-controller-manager run: a
// Deployment makes a ReplicaSet and pods, which run on the node; a
// StatefulSet makes its pod and its claim in the default class, whose
// volume the scheduler has provisioned for db-0's node through the
// built-in driver, so db-0 runs too.
func (k *kubectl) testWorkloads(t *testing.T) {
	k.mustIn(t, workloads, k.n("apply", "-f", "-")...)
	eventually(t, 2*time.Minute, func() error {
		out, err := k.run("", k.n("get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}")...)
		if err != nil {
			return err
		}
		var web, db int
		for _, l := range strings.Fields(out) {
			name, phase, _ := strings.Cut(l, "=")
			switch {
			case strings.HasPrefix(name, "web-") && phase == "Running":
				web++
			case name == "db-0" && phase == "Running":
				db++
			default:
				return fmt.Errorf("pod %s is %s", name, phase)
			}
		}
		if web != 2 || db != 1 {
			return fmt.Errorf("pods: %q", out)
		}
		return nil
	})
	contains(t, k.must(t, k.n("get", "replicasets", "-o", "name")...), "replicaset.apps/web-")
	// The StatefulSet's claim comes from its template, in the default
	// class (admission's DefaultStorageClass).
	out := k.must(t, k.n("get", "pvc", "data-db-0", "-o", "jsonpath={.spec.storageClassName} {.status.phase}")...)
	if out != "volplane-local Bound" {
		t.Fatalf("data-db-0 class and phase %q, want the default class volplane-local, Bound", out)
	}
}

func (k *kubectl) testGarbageCollection(t *testing.T) {
	k.must(t, k.n("create", "configmap", "owner")...)
	uid := k.must(t, k.n("get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}")...)
	dependent := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: %s
`, uid)
	k.mustIn(t, dependent, k.n("apply", "-f", "-")...)
	k.must(t, k.n("delete", "configmap", "owner")...)
	eventually(t, 2*time.Minute, func() error {
		if _, err := k.run("", k.n("get", "configmap", "dependent")...); err == nil {
			return fmt.Errorf("dependent still exists")
		} else if !strings.Contains(err.Error(), "NotFound") {
			return err
		}
		return nil
	})
}

func (k *kubectl) testNamespaceDeletion(t *testing.T) {
	ns := k.ns + "-gone"
	k.must(t, "create", "namespace", ns)
	k.must(t, "-n", ns, "create", "configmap", "inside")
	k.mustIn(t, fmt.Sprintf(claimManifest, "inside"), "-n", ns, "apply", "-f", "-")
	k.must(t, "delete", "namespace", ns, "--wait=false")
	eventually(t, 3*time.Minute, func() error {
		out, err := k.run("", "get", "namespace", ns, "-o", "jsonpath={.status.phase}")
		if err == nil {
			return fmt.Errorf("namespace still %s", out)
		}
		if !strings.Contains(err.Error(), "NotFound") {
			return err
		}
		return nil
	})
	if out := k.must(t, "get", "configmaps,pvc", "-A", "--field-selector", "metadata.namespace="+ns, "-o", "name"); out != "" {
		t.Fatalf("objects of the deleted namespace remain: %s", out)
	}
}
