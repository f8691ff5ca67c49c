package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"volplane/internal/hostops/hostopstest"
)

const (
	builtinDriver = "local.csi.volplane.io"
	// sidecarDriver is a second instance of the built-in driver under
	// its own name, beside the one `volplane up` runs.
	sidecarDriver = "sidecar.csi.volplane.io"
)

// TestCSIControllerSidecar runs the built-in driver in its own process
// (`volplane csi`, under a name of its own: `up` runs one already) and its
// controller side as `volplane csi-controller`
// against `volplane up`'s API, the way a sidecar runs next to a driver
// in any cluster: an Immediate class of the driver provisions a claim
// (one backend volume, a PV bound to the claim), a VolumeAttachment is
// attached and detached, deleting the claim deletes the PV and the
// backend volume, and CSIStorageCapacity follows the pool and goes with
// the CSIDriver.
func TestCSIControllerSidecar(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the built-in CSI driver needs root (its pool mounts a btrfs image)")
		}
		t.Skip("needs root: the built-in CSI driver mounts its pool")
	}
	p := startUp(t)
	// Mounts `up` leaves under its data dir go once it has stopped.
	t.Cleanup(func() { p.Stop(); hostopstest.Teardown(t, p.DataDir) })
	base := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	sock := driverSock(base)
	startDriver(t, base, sidecarDriver, "e2e-node", "")
	startProcess(t, base, "", "csi-controller", "--csi-address", "unix://"+sock, "--kubeconfig", p.Kubeconfig(),
		"--leader-election-namespace", "default")
	cs := p.Client()
	ctx := context.Background()
	backend := driverVolumes(t, sock)

	// A node of the driver's topology, and the driver's CSIDriver object:
	// capacity is published for it, owned by the CSIDriver.
	const topoKey = "topology.local.csi.volplane.io/node"
	if _, err := cs.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "e2e-attach-node",
		Labels: map[string]string{topoKey: "e2e-node"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.StorageV1().CSINodes().Create(ctx, &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-attach-node"},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: sidecarDriver, NodeID: "e2e-node", TopologyKeys: []string{topoKey}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.StorageV1().CSIDrivers().Create(ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: sidecarDriver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(true), StorageCapacity: ptr.To(true)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: e2e-csi}
provisioner: sidecar.csi.volplane.io
volumeBindingMode: Immediate
reclaimPolicy: Delete
parameters: {type: dir}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  storageClassName: e2e-csi
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 512Mi}}
`)
	pv := waitBoundPV(t, cs, "data", nil)
	if want := "pvc-"; !strings.HasPrefix(pv.Name, want) || pv.Spec.CSI == nil || pv.Spec.CSI.Driver != sidecarDriver {
		t.Fatalf("PV %s source %+v", pv.Name, pv.Spec.CSI)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != sidecarDriver ||
		!slices.Contains(pv.Finalizers, "external-provisioner.volume.kubernetes.io/finalizer") {
		t.Errorf("PV annotations %v finalizers %v", pv.Annotations, pv.Finalizers)
	}
	if ids := backend(); !mapHas(ids, pv.Spec.CSI.VolumeHandle) || len(ids) != 1 {
		t.Errorf("driver volumes %v, want only %s", ids, pv.Spec.CSI.VolumeHandle)
	}
	out := p.MustKubectl(t, "describe", "pvc", "data")
	for _, want := range []string{"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded", "Successfully provisioned volume " + pv.Name} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe pvc lacks %q:\n%s", want, out)
		}
	}

	// Capacity: one object for the class in the node's segment, less
	// than the pool once the volume took its share.
	var before int64
	eventually(t, 2*time.Minute, func() error {
		l, err := cs.StorageV1().CSIStorageCapacities("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		mine := capacityOf(l.Items, "e2e-csi")
		if len(mine) != 1 {
			return fmt.Errorf("%d CSIStorageCapacity objects of class e2e-csi, want 1", len(mine))
		}
		c := mine[0]
		if c.StorageClassName != "e2e-csi" || c.NodeTopology == nil || c.NodeTopology.MatchLabels[topoKey] != "e2e-node" ||
			len(c.OwnerReferences) != 1 || c.OwnerReferences[0].Kind != "CSIDriver" || c.Capacity == nil {
			return fmt.Errorf("CSIStorageCapacity %+v", c)
		}
		before = c.Capacity.Value()
		if before <= 0 || before > 1<<30-512<<20 {
			return fmt.Errorf("capacity %d does not count the 512Mi volume", before)
		}
		return nil
	})

	// Attach to the node whose CSINode names the driver's node ID.
	_, err := cs.StorageV1().VolumeAttachments().Create(ctx, &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-va"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: sidecarDriver, NodeName: "e2e-attach-node",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pv.Name}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		va, err := cs.StorageV1().VolumeAttachments().Get(ctx, "e2e-va", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !va.Status.Attached {
			return fmt.Errorf("not attached: %+v", va.Status)
		}
		return nil
	})
	if err := cs.StorageV1().VolumeAttachments().Delete(ctx, "e2e-va", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		_, err := cs.StorageV1().VolumeAttachments().Get(ctx, "e2e-va", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("VolumeAttachment still there: %v", err)
	})

	// Deleting the claim deletes the PV and the backend volume.
	p.MustKubectl(t, "delete", "pvc", "data", "--wait=false")
	eventually(t, 2*time.Minute, func() error { return pvGone(cs, pv.Name) })
	if ids := backend(); len(ids) != 0 {
		t.Errorf("backend volumes left: %v", ids)
	}
	eventually(t, 2*time.Minute, func() error {
		l, err := cs.StorageV1().CSIStorageCapacities("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		mine := capacityOf(l.Items, "e2e-csi")
		if len(mine) != 1 {
			return fmt.Errorf("capacity objects of class e2e-csi: %v", mine)
		}
		if got := mine[0].Capacity.Value(); got <= before {
			return fmt.Errorf("capacity %d after the volume went, %d before", got, before)
		}
		return nil
	})

	// The driver's CSIDriver goes: the garbage collector takes its
	// capacity objects.
	if err := cs.StorageV1().CSIDrivers().Delete(ctx, sidecarDriver, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, func() error {
		l, err := cs.StorageV1().CSIStorageCapacities("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		// The built-in driver's objects (of class volplane-local) stay.
		if mine := capacityOf(l.Items, "e2e-csi"); len(mine) != 0 {
			return fmt.Errorf("capacity objects left: %v", mine)
		}
		return nil
	})
}

// capacityOf returns the objects of class.
func capacityOf(items []storagev1.CSIStorageCapacity, class string) []storagev1.CSIStorageCapacity {
	var out []storagev1.CSIStorageCapacity
	for _, c := range items {
		if c.StorageClassName == class {
			out = append(out, c)
		}
	}
	return out
}
