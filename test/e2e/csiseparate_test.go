package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/hostopstest"
)

// TestCSISeparateDriverDetach is a driver in its own process (a second
// `volplane csi`, registered through plugins_registry, its controller
// side from `up --csi-controller`), started well after up, whose CSIDriver
// object says only attachRequired: true, followed through a whole detach
// between two pods:
// once the first pod is gone the volume is unpublished, unstaged, its
// VolumeAttachment deleted and the Node's status.volumesAttached no longer
// names it; the second pod attaches, stages and reads the same data; the
// claim's deletion removes the PV and the backend volume.
// TestCSIFlowOnUp covers capacity and the built-in driver.
func TestCSISeparateDriverDetach(t *testing.T) {
	hostopstest.RequireRoot(t)
	base := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	const (
		driver = "second.csi.volplane.io"
		node   = "e2e-node"
		class  = "separate"
	)
	sock := filepath.Join(base, "csi.sock")
	p := startUp(t, "--csi-controller", driver+"=unix://"+sock)
	t.Cleanup(func() { p.Stop(); hostopstest.Teardown(t, p.DataDir) })
	p.WaitPodsAccepted(t)
	// The driver comes up well after up's controllers started, as a
	// driver's pods scheduled onto a running cluster do: its controller
	// side keeps waiting for it.
	time.Sleep(20 * time.Second)
	pool := filepath.Join(base, "pool")
	startProcess(t, base, "", "csi", "--driver-name", driver, "--endpoint", "unix://"+sock,
		"--pool", pool, "--pool-size", "1Gi", "--node-id", node,
		"--registration-dir", filepath.Join(p.DataDir, "kubelet", "plugins_registry"))
	cs := p.Client()
	ctx := context.Background()

	eventually(t, 2*time.Minute, func() error {
		n, err := cs.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, d := range n.Spec.Drivers {
			if d.Name == driver && d.NodeID == node {
				return nil
			}
		}
		return fmt.Errorf("CSINode drivers %+v lack %s", n.Spec.Drivers, driver)
	})
	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+driver+`}
spec: {attachRequired: true}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: `+class+`}
provisioner: `+driver+`
volumeBindingMode: Immediate
reclaimPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: `+class+`, namespace: default}
spec:
  storageClassName: `+class+`
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
`)

	var pv *v1.PersistentVolume
	eventually(t, 2*time.Minute, func() error {
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, class, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c.Status.Phase != v1.ClaimBound {
			return fmt.Errorf("claim is %s", c.Status.Phase)
		}
		pv, err = cs.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
		return err
	})
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driver || pv.Spec.CSI.VolumeHandle == "" ||
		pv.Annotations["pv.kubernetes.io/provisioned-by"] != driver ||
		!slices.Contains(pv.Finalizers, "external-provisioner.volume.kubernetes.io/finalizer") {
		t.Fatalf("PV %s: csi %+v annotations %v finalizers %v", pv.Name, pv.Spec.CSI, pv.Annotations, pv.Finalizers)
	}
	handle := pv.Spec.CSI.VolumeHandle
	backend := filepath.Join(pool, "data", "volumes", handle)
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("backend volume: %v", err)
	}
	vaName := "csi-" + sha256hex(handle+driver+node)
	unique := v1.UniqueVolumeName("kubernetes.io/csi/" + driver + "^" + handle)
	stage := filepath.Join(p.DataDir, "kubelet", "plugins", "kubernetes.io", "csi", driver, sha256hex(handle), "globalmount")

	attached := func() error {
		va, err := cs.StorageV1().VolumeAttachments().Get(ctx, vaName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !va.Status.Attached || va.Spec.Attacher != driver || va.Spec.NodeName != node ||
			va.Spec.Source.PersistentVolumeName == nil || *va.Spec.Source.PersistentVolumeName != pv.Name {
			return fmt.Errorf("VolumeAttachment %s: spec %+v status %+v", vaName, va.Spec, va.Status)
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(n.Status.VolumesAttached, func(a v1.AttachedVolume) bool { return a.Name == unique }) {
			return fmt.Errorf("node's volumesAttached %v lack %s", n.Status.VolumesAttached, unique)
		}
		return nil
	}
	detached := func(publish string) error {
		if _, err := cs.StorageV1().VolumeAttachments().Get(ctx, vaName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("VolumeAttachment %s still there: %v", vaName, err)
		}
		mounts := hostopstest.MountsUnder(t, p.DataDir)
		for _, m := range []string{publish, stage} {
			if slices.Contains(mounts, m) {
				return fmt.Errorf("%s still mounted", m)
			}
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if slices.ContainsFunc(n.Status.VolumesAttached, func(a v1.AttachedVolume) bool { return a.Name == unique }) {
			return fmt.Errorf("node's volumesAttached still name %s", unique)
		}
		return nil
	}
	// runPod runs a pod on the claim and checks the volume is attached,
	// staged and published; it returns the publish path.
	runPod := func(name, script string) string {
		t.Helper()
		p.Apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, %q]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: %s}
`, name, script, class))
		var pod *v1.Pod
		eventually(t, 3*time.Minute, func() error {
			var err error
			pod, err = cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if pod.Status.Phase != v1.PodRunning {
				ev, _ := p.Kubectl("get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
				return fmt.Errorf("pod %s is %s; events:\n%s", name, pod.Status.Phase, ev)
			}
			return nil
		})
		eventually(t, time.Minute, attached)
		publish := filepath.Join(p.DataDir, "kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~csi", pv.Name, "mount")
		mounts := hostopstest.MountsUnder(t, p.DataDir)
		for _, want := range []string{stage, publish} {
			if !slices.Contains(mounts, want) {
				t.Errorf("%s is not a mount point; mounts under the data dir: %v", want, mounts)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(want), "vol_data.json")); err != nil {
				t.Errorf("vol_data.json beside %s: %v", want, err)
			}
		}
		return publish
	}

	publish := runPod("separate-writer", "echo from-the-writer > /data/file && exec sleep 3600")
	eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(filepath.Join(backend, "file"))
		if err != nil || string(b) != "from-the-writer\n" {
			return fmt.Errorf("backend file: %q %v", b, err)
		}
		return nil
	})

	// The only pod goes: the volume is unpublished, unstaged and detached.
	p.MustKubectl(t, "delete", "pod", "separate-writer", "--timeout=2m")
	eventually(t, 2*time.Minute, func() error { return detached(publish) })

	// A new pod attaches it again and reads what the first wrote.
	publish = runPod("separate-reader", "cat /data/file && exec sleep 3600")
	eventually(t, time.Minute, func() error {
		out, err := p.Kubectl("logs", "separate-reader")
		if err != nil || out != "from-the-writer\n" {
			return fmt.Errorf("reader's logs %q %v", out, err)
		}
		return nil
	})
	p.MustKubectl(t, "delete", "pod", "separate-reader", "--timeout=2m")
	eventually(t, 2*time.Minute, func() error { return detached(publish) })

	// The claim goes: the PV and the backend volume in the driver's pool go.
	p.MustKubectl(t, "delete", "pvc", class, "--timeout=2m")
	eventually(t, 2*time.Minute, func() error {
		if _, err := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("PV %s still there: %v", pv.Name, err)
		}
		if _, err := os.Stat(backend); !os.IsNotExist(err) {
			return fmt.Errorf("backend %s still there: %v", backend, err)
		}
		return nil
	})
}
