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
	const (
		driver = "second.csi.volplane.io"
		node   = "e2e-node"
		class  = "separate"
	)
	p, base := startUpForDriver(t, driver)
	p.WaitPodsAccepted(t)
	// The driver comes up well after up's controllers started, as a
	// driver's pods scheduled onto a running cluster do: its controller
	// side keeps waiting for it.
	time.Sleep(20 * time.Second)
	startDriver(t, base, driver, node, p.pluginsRegistry())
	cs := p.Client()
	ctx := context.Background()

	waitCSINodeDriver(t, cs, node, driver)
	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+driver+`}
spec: {attachRequired: true}
---`+immediateClassYAML(class, driver)+"---"+claimYAML(class, class, "32Mi"))

	pv := waitBoundPV(t, cs, class, nil)
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driver || pv.Spec.CSI.VolumeHandle == "" ||
		pv.Annotations["pv.kubernetes.io/provisioned-by"] != driver ||
		!slices.Contains(pv.Finalizers, "external-provisioner.volume.kubernetes.io/finalizer") {
		t.Fatalf("PV %s: csi %+v annotations %v finalizers %v", pv.Name, pv.Spec.CSI, pv.Annotations, pv.Finalizers)
	}
	handle := pv.Spec.CSI.VolumeHandle
	backend := backendDir(driverPool(base), handle)
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("backend volume: %v", err)
	}
	va := vaName(handle, driver, node)
	unique := csiUniqueName(driver, handle)
	stage := csiStagePath(p.kubeletDir(), driver, handle)

	attached := func() error {
		got, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := attachedVA(got, driver, node, pv.Name); err != nil {
			return err
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
		if _, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("VolumeAttachment %s still there: %v", va, err)
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
		p.Apply(t, claimPodYAML(name, class, script))
		pod := waitPodRunning(t, p, name)
		eventually(t, time.Minute, attached)
		publish := csiPublishPath(p.kubeletDir(), pod.UID, pv.Name)
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
		if err := pvGone(cs, pv.Name); err != nil {
			return err
		}
		if _, err := os.Stat(backend); !os.IsNotExist(err) {
			return fmt.Errorf("backend %s still there: %v", backend, err)
		}
		return nil
	})
}
