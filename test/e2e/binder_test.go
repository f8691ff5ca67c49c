package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBinder drives volplane's PV controller (persistentvolume-binder,
// pvc-protection, pv-protection) on one `volplane up` with the real
// kubectl: each matching rule, pre-binding both ways, Retain -> Released
// -> claimRef removed -> Available -> bound again, Delete, Lost and back,
// a Terminating claim in use, and a class that does not exist. Each
// subtest works in a namespace of its own and names its volumes after it.
func TestBinder(t *testing.T) {
	p := startUp(t)
	b := &binderE2E{p: p}
	t.Run("matching", b.testMatching)
	t.Run("prebinding", b.testPrebinding)
	t.Run("retain-release-reuse", b.testRetain)
	t.Run("delete", b.testDelete)
	t.Run("lost-and-back", b.testLost)
	t.Run("terminating-in-use", b.testTerminatingInUse)
	t.Run("missing-class", b.testMissingClass)
	t.Run("bound-by-volplane", b.testFieldManager)
}

type binderE2E struct{ p *Process }

// get returns kubectl get's jsonpath output for one object.
func (b *binderE2E) get(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(b.p.MustKubectl(t, args...))
}

// waitFor waits until `kubectl get <obj> -o jsonpath=<path>` prints want.
func (b *binderE2E) waitFor(t *testing.T, want string, args ...string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		out, err := b.p.Kubectl(args...)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(out); got != want {
			return fmt.Errorf("kubectl %s = %q, want %q", strings.Join(args, " "), got, want)
		}
		return nil
	})
}

// waitDescribe waits until `kubectl describe` of obj shows every string.
func (b *binderE2E) waitDescribe(t *testing.T, ns, obj string, want ...string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		args := []string{"describe", obj}
		if ns != "" {
			args = append([]string{"-n", ns}, args...)
		}
		out, err := b.p.Kubectl(args...)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("describe %s lacks %q:\n%s", obj, w, out)
			}
		}
		return nil
	})
}

// pvYAML is a Retain hostPath volume; meta adds metadata lines, and
// callers append spec lines.
func pvYAML(name, size, class, modes, meta string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s
%s
spec:
  capacity: {storage: %s}
  accessModes: [%s]
  storageClassName: "%s"
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /tmp/volplane-e2e/%s}
`, name, meta, size, modes, class, name)
}

func pvcYAML(ns, name, size, class, modes, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s, namespace: %s}
spec:
  storageClassName: "%s"
  accessModes: [%s]
  resources: {requests: {storage: %s}}
%s
`, name, ns, class, modes, size, extra)
}

func (b *binderE2E) namespace(t *testing.T, ns string) {
	t.Helper()
	b.p.MustKubectl(t, "create", "namespace", ns)
}

func (b *binderE2E) testMatching(t *testing.T) {
	const ns = "match"
	b.namespace(t, ns)
	// The volumes a rule must skip are the smaller or better-placed
	// ones, so that a wrong rule shows up as a wrong volume.
	b.p.Apply(t, strings.Join([]string{
		pvYAML("m-size-1g", "1Gi", "", "ReadWriteOnce", ""),
		pvYAML("m-size-5g", "5Gi", "", "ReadWriteOnce", ""),
		pvYAML("m-size-9g", "9Gi", "", "ReadWriteOnce", ""),
		pvYAML("m-gold-2g", "2Gi", "m-gold", "ReadWriteOnce", ""),
		pvYAML("m-rwx-3g", "3Gi", "m-modes", "ReadWriteOnce, ReadWriteMany", ""),
		pvYAML("m-rwo-1g", "1Gi", "m-modes", "ReadWriteOnce", ""),
		pvYAML("m-label-4g", "4Gi", "m-sel", "ReadWriteOnce", "  labels: {tier: fast}"),
		pvYAML("m-nolabel-1g", "1Gi", "m-sel", "ReadWriteOnce", ""),
		pvYAML("m-block-2g", "2Gi", "m-mode", "ReadWriteOnce", "") + "  volumeMode: Block\n",
		pvYAML("m-fs-1g", "1Gi", "m-mode", "ReadWriteOnce", ""),
	}, "---\n"))
	for _, pv := range []string{"m-size-1g", "m-size-5g", "m-size-9g", "m-gold-2g", "m-rwx-3g", "m-rwo-1g", "m-label-4g", "m-nolabel-1g", "m-block-2g", "m-fs-1g"} {
		b.waitFor(t, "Available", "get", "pv", pv, "-o", "jsonpath={.status.phase}")
	}
	b.p.Apply(t, strings.Join([]string{
		pvcYAML(ns, "size", "3Gi", "", "ReadWriteOnce", ""),
		pvcYAML(ns, "gold", "1Gi", "m-gold", "ReadWriteOnce", ""),
		pvcYAML(ns, "rwx", "1Gi", "m-modes", "ReadWriteMany", ""),
		pvcYAML(ns, "selector", "1Gi", "m-sel", "ReadWriteOnce", "  selector: {matchLabels: {tier: fast}}"),
		pvcYAML(ns, "block", "1Gi", "m-mode", "ReadWriteOnce", "  volumeMode: Block"),
		pvcYAML(ns, "nofit", "20Gi", "", "ReadWriteOnce", ""),
	}, "---\n"))
	want := map[string]string{
		"size":     "m-size-5g",  // smallest that fits
		"gold":     "m-gold-2g",  // class equal, though m-size-1g is smaller
		"rwx":      "m-rwx-3g",   // offers every mode asked
		"selector": "m-label-4g", // labels match
		"block":    "m-block-2g", // volume mode equal
	}
	for claim, pv := range want {
		b.waitFor(t, "Bound "+pv, "-n", ns, "get", "pvc", claim, "-o", "jsonpath={.status.phase} {.spec.volumeName}")
		b.waitFor(t, "Bound "+ns+"/"+claim, "get", "pv", pv, "-o", "jsonpath={.status.phase} {.spec.claimRef.namespace}/{.spec.claimRef.name}")
	}
	for _, pv := range []string{"m-size-1g", "m-size-9g", "m-rwo-1g", "m-nolabel-1g", "m-fs-1g"} {
		b.waitFor(t, "Available", "get", "pv", pv, "-o", "jsonpath={.status.phase}")
	}
	b.waitDescribe(t, ns, "pvc/nofit", "Pending", "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
	if got := b.get(t, "-n", ns, "get", "pvc", "size", "-o", "jsonpath={.status.capacity.storage}"); got != "5Gi" {
		t.Errorf("claim capacity %q, want the volume's 5Gi", got)
	}
}

func (b *binderE2E) testPrebinding(t *testing.T) {
	const ns = "prebind"
	b.namespace(t, ns)
	// A volume reserved for claim "wants-volume", and a bigger free one
	// that matching would otherwise not choose anyway; a claim that names
	// its volume, smaller than another that fits.
	b.p.Apply(t, strings.Join([]string{
		pvYAML("pb-reserved", "2Gi", "", "ReadWriteOnce", "") + "  claimRef: {namespace: " + ns + ", name: reserved-for-me}\n",
		pvYAML("pb-named-8g", "8Gi", "", "ReadWriteOnce", ""),
		pvYAML("pb-other-2g", "2Gi", "", "ReadWriteOnce", ""),
	}, "---\n"))
	b.waitFor(t, "Available", "get", "pv", "pb-reserved", "-o", "jsonpath={.status.phase}")
	b.p.Apply(t, strings.Join([]string{
		pvcYAML(ns, "someone-else", "2Gi", "", "ReadWriteOnce", ""),
		pvcYAML(ns, "reserved-for-me", "1Gi", "", "ReadWriteOnce", ""),
		pvcYAML(ns, "names-its-volume", "1Gi", "", "ReadWriteOnce", "  volumeName: pb-named-8g"),
	}, "---\n"))
	b.waitFor(t, "Bound pb-reserved", "-n", ns, "get", "pvc", "reserved-for-me", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	b.waitFor(t, "Bound pb-named-8g", "-n", ns, "get", "pvc", "names-its-volume", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	b.waitFor(t, "Bound pb-other-2g", "-n", ns, "get", "pvc", "someone-else", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	// The volume pre-bound by its creator gets the claim's UID but no
	// bound-by-controller annotation; the claim that named its volume
	// has bind-completed but no bound-by-controller either.
	uid := b.get(t, "-n", ns, "get", "pvc", "reserved-for-me", "-o", "jsonpath={.metadata.uid}")
	b.waitFor(t, uid, "get", "pv", "pb-reserved", "-o", "jsonpath={.spec.claimRef.uid}")
	if a := b.get(t, "get", "pv", "pb-reserved", "-o", `jsonpath={.metadata.annotations.pv\.kubernetes\.io/bound-by-controller}`); a != "" {
		t.Errorf("pre-bound volume has bound-by-controller %q", a)
	}
	if a := b.get(t, "-n", ns, "get", "pvc", "names-its-volume", "-o", `jsonpath={.metadata.annotations.pv\.kubernetes\.io/bind-completed}|{.metadata.annotations.pv\.kubernetes\.io/bound-by-controller}`); a != "yes|" {
		t.Errorf("claim that named its volume: annotations bind-completed|bound-by-controller = %q, want yes|", a)
	}
	// A volume reserved for a claim in a namespace that does not exist is
	// never given to anyone else.
	b.p.Apply(t, pvYAML("pb-ghost", "1Gi", "pb-ghost", "ReadWriteOnce", "")+"  claimRef: {namespace: no-such-ns, name: ghost}\n")
	b.p.Apply(t, pvcYAML(ns, "ghost", "1Gi", "pb-ghost", "ReadWriteOnce", ""))
	b.waitDescribe(t, ns, "pvc/ghost", "Pending", "ProvisioningFailed", `storageclass.storage.k8s.io "pb-ghost" not found`)
	b.waitFor(t, "Available no-such-ns/ghost", "get", "pv", "pb-ghost", "-o", "jsonpath={.status.phase} {.spec.claimRef.namespace}/{.spec.claimRef.name}")
}

func (b *binderE2E) testRetain(t *testing.T) {
	const ns = "retain"
	b.namespace(t, ns)
	b.p.Apply(t, pvYAML("r-vol", "1Gi", "r-class", "ReadWriteOnce", ""))
	b.p.Apply(t, pvcYAML(ns, "first", "1Gi", "r-class", "ReadWriteOnce", ""))
	b.waitFor(t, "Bound r-vol", "-n", ns, "get", "pvc", "first", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	b.p.MustKubectl(t, "-n", ns, "delete", "pvc", "first")
	b.waitFor(t, "Released", "get", "pv", "r-vol", "-o", "jsonpath={.status.phase}")
	// A new claim does not get a Released volume.
	b.p.Apply(t, pvcYAML(ns, "second", "1Gi", "r-class", "ReadWriteOnce", ""))
	b.waitDescribe(t, ns, "pvc/second", "Pending")
	if got := b.get(t, "get", "pv", "r-vol", "-o", "jsonpath={.status.phase}"); got != "Released" {
		t.Fatalf("Retain volume is %s before its claimRef is removed", got)
	}
	// The admin removes the claimRef: Available, and the waiting claim
	// gets it.
	b.p.MustKubectl(t, "patch", "pv", "r-vol", "--type", "json", "-p", `[{"op":"remove","path":"/spec/claimRef"}]`)
	b.waitFor(t, "Bound r-vol", "-n", ns, "get", "pvc", "second", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	b.waitFor(t, "Bound", "get", "pv", "r-vol", "-o", "jsonpath={.status.phase}")
	if lt := b.get(t, "get", "pv", "r-vol", "-o", "jsonpath={.status.lastPhaseTransitionTime}"); lt == "" {
		t.Error("no lastPhaseTransitionTime")
	}
}

func (b *binderE2E) testDelete(t *testing.T) {
	const ns = "delete"
	b.namespace(t, ns)
	// No in-process provisioner knows how to delete this static volume:
	// it becomes Failed with a VolumeFailedDelete event, and stays.
	b.p.Apply(t, strings.Replace(pvYAML("d-static", "1Gi", "d-class", "ReadWriteOnce", ""), "Retain", "Delete", 1))
	// A volume of an external provisioner is left for it to delete.
	b.p.Apply(t, strings.Replace(pvYAML("d-external", "1Gi", "d-ext", "ReadWriteOnce",
		"  annotations: {pv.kubernetes.io/provisioned-by: csi.example.com}"), "Retain", "Delete", 1))
	b.p.Apply(t, pvcYAML(ns, "c-static", "1Gi", "d-class", "ReadWriteOnce", "")+"---\n"+pvcYAML(ns, "c-external", "1Gi", "d-ext", "ReadWriteOnce", ""))
	b.waitFor(t, "Bound", "-n", ns, "get", "pvc", "c-static", "-o", "jsonpath={.status.phase}")
	b.waitFor(t, "Bound", "-n", ns, "get", "pvc", "c-external", "-o", "jsonpath={.status.phase}")
	b.p.MustKubectl(t, "-n", ns, "delete", "pvc", "c-static", "c-external")
	b.waitFor(t, "Failed", "get", "pv", "d-static", "-o", "jsonpath={.status.phase}")
	b.waitDescribe(t, "", "pv/d-static", "VolumeFailedDelete", `error getting deleter volume plugin for volume "d-static": no deletable volume plugin matched`)
	b.waitFor(t, "Released", "get", "pv", "d-external", "-o", "jsonpath={.status.phase}")
	// Nothing a user created is deleted unless its policy asked for it.
	b.get(t, "get", "pv", "d-static", "d-external")
}

func (b *binderE2E) testLost(t *testing.T) {
	const ns = "lost"
	b.namespace(t, ns)
	b.p.Apply(t, pvYAML("l-vol", "1Gi", "l-class", "ReadWriteOnce", ""))
	b.p.Apply(t, pvcYAML(ns, "c", "1Gi", "l-class", "ReadWriteOnce", ""))
	b.waitFor(t, "Bound l-vol", "-n", ns, "get", "pvc", "c", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
	uid := b.get(t, "-n", ns, "get", "pvc", "c", "-o", "jsonpath={.metadata.uid}")
	// pv-protection keeps a Bound volume: deleting it leaves it Terminating.
	b.p.MustKubectl(t, "delete", "pv", "l-vol", "--wait=false")
	b.waitFor(t, "Bound", "get", "pv", "l-vol", "-o", "jsonpath={.status.phase}")
	if dt := b.get(t, "get", "pv", "l-vol", "-o", "jsonpath={.metadata.deletionTimestamp}"); dt == "" {
		t.Fatal("volume not being deleted")
	}
	// Force it out: the claim is Lost.
	b.p.MustKubectl(t, "patch", "pv", "l-vol", "--type", "merge", "-p", `{"metadata":{"finalizers":null}}`)
	b.waitFor(t, "Lost", "-n", ns, "get", "pvc", "c", "-o", "jsonpath={.status.phase}")
	b.waitDescribe(t, ns, "pvc/c", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
	// The volume comes back with the claim's reference: Bound again.
	b.p.Apply(t, pvYAML("l-vol", "1Gi", "l-class", "ReadWriteOnce", "")+
		fmt.Sprintf("  claimRef: {namespace: %s, name: c, uid: %s}\n", ns, uid))
	b.waitFor(t, "Bound", "-n", ns, "get", "pvc", "c", "-o", "jsonpath={.status.phase}")
	b.waitFor(t, "Bound", "get", "pv", "l-vol", "-o", "jsonpath={.status.phase}")
}

func (b *binderE2E) testTerminatingInUse(t *testing.T) {
	const ns = "inuse"
	b.namespace(t, ns)
	b.p.Apply(t, pvYAML("u-vol", "1Gi", "u-class", "ReadWriteOnce", ""))
	b.p.Apply(t, pvcYAML(ns, "data", "1Gi", "u-class", "ReadWriteOnce", ""))
	b.waitFor(t, "Bound", "-n", ns, "get", "pvc", "data", "-o", "jsonpath={.status.phase}")
	// A pod placed on a node (spec.nodeName: scheduled) uses the claim.
	b.p.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: user, namespace: %s}
spec:
  nodeName: e2e-node
  containers: [{name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: d, mountPath: /d}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
`, ns))
	b.waitFor(t, "False PodUsingPVC", "-n", ns, "get", "pvc", "data", "-o", `jsonpath={.status.conditions[?(@.type=="Unused")].status} {.status.conditions[?(@.type=="Unused")].reason}`)
	b.p.MustKubectl(t, "-n", ns, "delete", "pvc", "data", "--wait=false")
	b.waitDescribe(t, ns, "pvc/data", "Terminating")
	// Still there a while later: the pod uses it.
	time.Sleep(2 * time.Second)
	b.waitDescribe(t, ns, "pvc/data", "Terminating")
	if fin := b.get(t, "-n", ns, "get", "pvc", "data", "-o", "jsonpath={.metadata.finalizers}"); !strings.Contains(fin, "kubernetes.io/pvc-protection") {
		t.Fatalf("in-use claim lost its finalizer: %s", fin)
	}
	// The pod goes: so does the claim, and its volume is Released.
	b.p.MustKubectl(t, "-n", ns, "delete", "pod", "user", "--grace-period=0", "--force")
	eventually(t, time.Minute, func() error {
		out, err := b.p.Kubectl("-n", ns, "get", "pvc", "data", "--ignore-not-found", "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("claim still exists")
		}
		return nil
	})
	b.waitFor(t, "Released", "get", "pv", "u-vol", "-o", "jsonpath={.status.phase}")
}

func (b *binderE2E) testMissingClass(t *testing.T) {
	const ns = "noclass"
	b.namespace(t, ns)
	b.p.Apply(t, pvcYAML(ns, "c", "1Gi", "does-not-exist", "ReadWriteOnce", ""))
	b.waitDescribe(t, ns, "pvc/c", "Pending", "ProvisioningFailed", `storageclass.storage.k8s.io "does-not-exist" not found`)
	// The event is deduplicated: the resync repeats it as a count.
	eventually(t, 90*time.Second, func() error {
		out, err := b.p.Kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=c,reason=ProvisioningFailed",
			"-o", "jsonpath={range .items[*]}{.count}{\"\\n\"}{end}")
		if err != nil {
			return err
		}
		lines := strings.Fields(out)
		if len(lines) != 1 {
			return fmt.Errorf("want one deduplicated event, got counts %v", lines)
		}
		if lines[0] == "1" {
			return fmt.Errorf("event count still 1")
		}
		return nil
	})
}

// testFieldManager checks that volplane, not an upstream controller, made
// the binds.
func (b *binderE2E) testFieldManager(t *testing.T) {
	const ns = "manager"
	b.namespace(t, ns)
	b.p.Apply(t, pvYAML("f-vol", "1Gi", "f-class", "ReadWriteOnce", ""))
	b.p.Apply(t, pvcYAML(ns, "c", "1Gi", "f-class", "ReadWriteOnce", ""))
	b.waitFor(t, "Bound", "-n", ns, "get", "pvc", "c", "-o", "jsonpath={.status.phase}")
	for _, obj := range [][]string{{"get", "pv", "f-vol"}, {"-n", ns, "get", "pvc", "c"}} {
		managers := b.get(t, append(obj, "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}")...)
		if !strings.Contains(managers, "volplane-controller-manager") || strings.Contains(managers, "kube-controller-manager") {
			t.Errorf("%v managed by %q, want volplane-controller-manager and not kube-controller-manager", obj, managers)
		}
	}
}
