package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/hostopstest"
)

// TestCSIFlowOnUp is the life of a CSI volume on `volplane up`, through
// kubectl, with the built-in driver up runs and with a second instance
// of it in its own process (`volplane csi --registration-dir`, its
// controller side named by `up --csi-controller`), as any driver runs:
// the driver registers with the node (its CSINode entry), capacity is
// published, a claim of an Immediate class is provisioned (PV with the
// external provisioner's finalizer), a pod using it gets a
// VolumeAttachment, is staged and published at upstream's paths and
// writes a file into the backend volume; a second pod after the first is
// gone reads the same data; deleting the claim deletes the PV and the
// backend volume from the driver's pool. The same with the default class
// volplane-local (WaitForFirstConsumer): nothing before the pod, then a
// volume provisioned for the node the pod was scheduled to.
func TestCSIFlowOnUp(t *testing.T) {
	hostopstest.RequireRoot(t)
	const second = "second.csi.volplane.io"
	p, base := startUpForDriver(t, second)
	startDriver(t, base, second, "e2e-node", p.pluginsRegistry())
	p.WaitPodsAccepted(t)

	// kubectl get csidriver shows what up created.
	out := p.MustKubectl(t, "get", "csidriver", builtinDriver, "--no-headers")
	if f := strings.Fields(out); len(f) < 7 || f[1] != "true" || f[2] != "true" || f[3] != "true" || f[5] != "false" || f[6] != "Persistent,Ephemeral" {
		t.Errorf("kubectl get csidriver: %q, want attach, pod info and capacity true, republish false, Persistent,Ephemeral", out)
	}
	// The second driver's deployment would bring its CSIDriver object.
	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+second+`}
spec: {attachRequired: true, podInfoOnMount: true, storageCapacity: true}
`)

	t.Run("built-in", func(t *testing.T) {
		csiFlow(t, p, builtinDriver, filepath.Join(p.DataDir, "pool"), "local-flow")
	})
	t.Run("own process", func(t *testing.T) {
		csiFlow(t, p, second, driverPool(base), "second-flow")
	})
	t.Run("default class", func(t *testing.T) {
		csiFlow(t, p, builtinDriver, filepath.Join(p.DataDir, "pool"), "")
	})
}

// csiFlow runs the life of one volume of driver, whose pool is poolDir,
// on the up node: of an Immediate class it makes, or with class "" of the
// default class volplane-local, which waits for the first consumer.
func csiFlow(t *testing.T, p *Process, driver, poolDir, class string) {
	cs := p.Client()
	ctx := context.Background()
	const node = "e2e-node"
	claim, delayed := class, class == ""
	if delayed {
		class, claim = "volplane-local", "default-flow"
	}

	// The driver registered with the node agent through plugins_registry.
	waitCSINodeDriver(t, cs, node, driver)

	if delayed {
		p.Apply(t, claimYAML(claim, "", "64Mi"))
	} else {
		p.Apply(t, claimYAML(claim, class, "64Mi")+"---"+immediateClassYAML(class, driver))
	}
	// Capacity of the class in the node's segment.
	eventually(t, 2*time.Minute, func() error {
		out, err := p.Kubectl("get", "csistoragecapacities", "-A", "-o",
			`jsonpath={range .items[*]}{.storageClassName} {.nodeTopology.matchLabels.topology\.local\.csi\.volplane\.io/node} {.capacity}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == class && f[1] == node && f[2] != "0" {
				return nil
			}
		}
		return fmt.Errorf("no capacity of class %s on %s: %q", class, node, out)
	})

	var pv *v1.PersistentVolume
	waitBound := func() {
		t.Helper()
		pv = waitBoundPV(t, cs, claim, func(c *v1.PersistentVolumeClaim) error {
			if delayed && c.Annotations["volume.kubernetes.io/selected-node"] != node {
				return fmt.Errorf("claim annotations %v lack the selected node", c.Annotations)
			}
			return nil
		})
		if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driver ||
			!slices.Contains(pv.Finalizers, "external-provisioner.volume.kubernetes.io/finalizer") {
			t.Fatalf("PV %s: csi %+v finalizers %v", pv.Name, pv.Spec.CSI, pv.Finalizers)
		}
		a := pv.Spec.NodeAffinity
		if a == nil || a.Required == nil || len(a.Required.NodeSelectorTerms) != 1 ||
			fmt.Sprint(a.Required.NodeSelectorTerms[0].MatchExpressions) != fmt.Sprintf("[{%s In [%s]}]", "topology.local.csi.volplane.io/node", node) {
			t.Errorf("PV node affinity %+v, want the node's topology segment", a)
		}
	}
	if delayed {
		// Nothing is provisioned before a pod uses the claim.
		eventually(t, time.Minute, func() error {
			out, err := p.Kubectl("get", "events", "--field-selector", "involvedObject.name="+claim, "-o", "jsonpath={.items[*].reason}")
			if err != nil || !strings.Contains(out, "WaitForFirstConsumer") {
				return fmt.Errorf("claim events %q %v, want WaitForFirstConsumer", out, err)
			}
			return nil
		})
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec.VolumeName != "" {
			t.Fatalf("claim of a delayed class bound to %s before any pod", c.Spec.VolumeName)
		}
	} else {
		waitBound()
	}

	p.Apply(t, claimPodYAML(claim+"-writer", claim, "echo written-by-the-first-pod > /data/file && exec sleep 3600"))
	if delayed {
		waitBound()
	}
	handle := pv.Spec.CSI.VolumeHandle
	backend := backendDir(poolDir, handle)
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("backend volume: %v", err)
	}
	va := vaName(handle, driver, node)
	stage := csiStagePath(p.kubeletDir(), driver, handle)
	first := waitPodRunning(t, p, claim+"-writer")
	eventually(t, time.Minute, func() error {
		got, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return attachedVA(got, driver, node, pv.Name)
	})
	publish := csiPublishPath(p.kubeletDir(), first.UID, pv.Name)
	mounts := hostopstest.MountsUnder(t, p.DataDir)
	for _, want := range []string{stage, publish} {
		if !slices.Contains(mounts, want) {
			t.Errorf("%s is not a mount point; mounts under the data dir: %v", want, mounts)
		}
	}
	eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(filepath.Join(backend, "file"))
		if err != nil || string(b) != "written-by-the-first-pod\n" {
			return fmt.Errorf("backend file: %q %v", b, err)
		}
		return nil
	})

	// The pod goes; a new one reads what the first wrote.
	p.MustKubectl(t, "delete", "pod", claim+"-writer", "--timeout=2m")
	eventually(t, 2*time.Minute, func() error {
		if slices.Contains(hostopstest.MountsUnder(t, p.DataDir), publish) {
			return fmt.Errorf("%s still mounted", publish)
		}
		return nil
	})
	p.Apply(t, claimPodYAML(claim+"-reader", claim, "cat /data/file && exec sleep 3600"))
	waitPodRunning(t, p, claim+"-reader")
	eventually(t, time.Minute, func() error {
		out, err := p.Kubectl("logs", claim+"-reader")
		if err != nil || out != "written-by-the-first-pod\n" {
			return fmt.Errorf("reader's logs %q %v", out, err)
		}
		return nil
	})

	// The claim goes once its pod has: the PV and the backend volume go.
	p.MustKubectl(t, "delete", "pod", claim+"-reader", "--timeout=2m")
	p.MustKubectl(t, "delete", "pvc", claim, "--timeout=2m")
	eventually(t, 2*time.Minute, func() error {
		if err := pvGone(cs, pv.Name); err != nil {
			return err
		}
		if _, err := os.Stat(backend); !os.IsNotExist(err) {
			return fmt.Errorf("backend %s still there: %v", backend, err)
		}
		if _, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("VolumeAttachment %s still there: %v", va, err)
		}
		return nil
	})
	for _, m := range hostopstest.MountsUnder(t, p.kubeletDir()) {
		if strings.Contains(m, handle) || strings.Contains(m, sha256hex(handle)) || strings.Contains(m, pv.Name) {
			t.Errorf("mount of the deleted volume left: %s", m)
		}
	}
}
