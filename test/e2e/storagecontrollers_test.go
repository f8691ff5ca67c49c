package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"volplane/internal/controller"
	"volplane/internal/controller/all"
)

// quietPeriod is how long a test watches for work that must not happen.
const quietPeriod = 15 * time.Second

func staticPair(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:       "manual",
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("manual"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamStorageControllersDoNotRun starts `volplane up` with every
// volplane controller disabled: whatever storage work then happens could
// only come from upstream's controllers, and none must.
func TestUpstreamStorageControllersDoNotRun(t *testing.T) {
	p := startUp(t, disableAllControllers())
	cs := p.Client()
	ctx := context.Background()

	// persistentvolume-binder: a matching pair stays unbound.
	staticPair(t, cs, "unbound")
	// pvc-protection: a deleted unused claim keeps its finalizer.
	staticPair(t, cs, "protected")
	if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "protected", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// attachdetach: a pod on a node whose attach/detach is
	// controller-managed, using a bound CSI PV of a driver that needs
	// attaching, gets no VolumeAttachment from upstream's controller
	// (which would attach exactly this; an inline CSI volume it would
	// not).
	attachablePV(t, cs)
	if _, err := cs.StorageV1().CSIDrivers().Create(ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "attach.example.com"}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(true)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "user"},
		Spec: corev1.PodSpec{
			NodeName:   "n1",
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{
				{Name: "attached", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "attached"}}},
				// ephemeral-volume: no claim is made for this.
				{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
					Spec: corev1.PersistentVolumeClaimSpec{
						StorageClassName: ptr.To("manual"),
						AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				}}}},
			},
		},
	}
	// The service account controller makes "default" shortly after start;
	// admission refuses pods until then.
	eventually(t, time.Minute, func() error {
		_, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		return err
	})

	time.Sleep(quietPeriod)
	pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, "unbound", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Spec.ClaimRef != nil || pv.Status.Phase == corev1.VolumeBound {
		t.Errorf("PV bound with volplane's controllers off: claimRef=%v phase=%s", pv.Spec.ClaimRef, pv.Status.Phase)
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "unbound", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("claim bound with volplane's controllers off: volumeName=%q phase=%s", pvc.Spec.VolumeName, pvc.Status.Phase)
	}
	protected, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "protected", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deleted unused claim is gone with volplane's controllers off: %v", err)
	}
	if protected.DeletionTimestamp == nil {
		t.Error("claim is not Terminating")
	}
	vas, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Told apart by who wrote them: volplane's own attach/detach
	// controller makes VolumeAttachments too, as controller.UserAgent.
	for _, va := range vas.Items {
		for _, mf := range va.ManagedFields {
			if mf.Manager != controller.UserAgent {
				t.Errorf("VolumeAttachment %s (for %s on %s) written by %s with volplane's controllers off",
					va.Name, ptr.Deref(va.Spec.Source.PersistentVolumeName, "?"), va.Spec.NodeName, mf.Manager)
			}
		}
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "user-scratch", metav1.GetOptions{}); err == nil {
		t.Error("ephemeral volume claim made with volplane's controllers off")
	}
}

// attachablePV makes node n1 with controller-managed attach/detach and a
// CSI PV of attach.example.com bound to claim default/attached, bound by
// hand (the PV controller is off).
func attachablePV(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
		Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "attached"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(""),
			VolumeName:       "attached",
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "attached"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			ClaimRef:    &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: "default", Name: "attached", UID: claim.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: "attach.example.com", VolumeHandle: "vol-1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Status.Phase = corev1.VolumeBound
	if _, err := cs.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
		AccessModes: claim.Spec.AccessModes, Capacity: pv.Spec.Capacity}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestVolumeAttributesClassDeletion: a VolumeAttributesClass no claim
// uses goes when deleted (the API adds kubernetes.io/vac-protection;
// volplane's volumeattributesclass-protection removes it), while one a
// claim asks for stays Terminating until that claim is gone.
func TestVolumeAttributesClassDeletion(t *testing.T) {
	p := startUp(t)
	cs := p.Client()
	ctx := context.Background()
	for _, n := range []string{"unused", "used"} {
		if _, err := cs.StorageV1().VolumeAttributesClasses().Create(ctx, &storagev1.VolumeAttributesClass{
			ObjectMeta: metav1.ObjectMeta{Name: n}, DriverName: "attach.example.com", Parameters: map[string]string{"iops": "1000"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "vac-user"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName:          ptr.To("manual"),
			VolumeAttributesClassName: ptr.To("used"),
			AccessModes:               []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:                 corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.MustKubectl(t, "delete", "volumeattributesclass", "unused", "used", "--wait=false")
	gone := func(name string) func() error {
		return func() error {
			if _, err := cs.StorageV1().VolumeAttributesClasses().Get(ctx, name, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("volume attributes class %s still there", name)
			}
			return nil
		}
	}
	eventually(t, time.Minute, gone("unused"))
	used, err := cs.StorageV1().VolumeAttributesClasses().Get(ctx, "used", metav1.GetOptions{})
	if err != nil || used.DeletionTimestamp == nil {
		t.Fatalf("class a claim asks for: %v, %v; want it Terminating", used, err)
	}
	p.MustKubectl(t, "delete", "pvc", "vac-user", "--wait=false")
	eventually(t, time.Minute, gone("used"))
}

// TestBindingComesFromVolplane: with volplane's controllers on, a static
// pair binds, and the API's managedFields say volplane's controller
// manager wrote the binding, not kube-controller-manager.
func TestBindingComesFromVolplane(t *testing.T) {
	p := startUp(t)
	cs := p.Client()
	ctx := context.Background()
	staticPair(t, cs, "pair")
	waitClaimBound(t, cs, "pair")
	pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, "pair", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var managers []string
	for _, mf := range pv.ManagedFields {
		managers = append(managers, mf.Manager)
		if strings.Contains(mf.Manager, "kube-controller-manager") {
			t.Errorf("kube-controller-manager wrote the PV: %+v", mf)
		}
	}
	found := false
	for _, mf := range pv.ManagedFields {
		if mf.Manager == controller.UserAgent && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:claimRef"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no managedFields entry of %s owns spec.claimRef; managers: %v", controller.UserAgent, managers)
	}
}

// TestControllersAgainstAnotherCluster runs `volplane server --kubeconfig`
// (volplane's controllers only) against a second `volplane server` whose
// own volplane controllers are off: the binding is made by the outside
// controller manager, which holds the Lease.
func TestControllersAgainstAnotherCluster(t *testing.T) {
	dir := t.TempDir()
	listen := freeAddr(t)
	api := startProcess(t, dir, listen, "server", "--data-dir", dir, "--listen", listen, disableAllControllers())
	api.WaitReady()
	cs := api.Client()
	ctx := context.Background()

	staticPair(t, cs, "remote")
	time.Sleep(5 * time.Second)
	if pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "remote", metav1.GetOptions{}); err != nil || pvc.Status.Phase == corev1.ClaimBound {
		t.Fatalf("claim bound before any controller ran: %v %v", pvc.Status.Phase, err)
	}

	ctrlDir := t.TempDir()
	ctrls := startProcess(t, ctrlDir, "", "server", "--data-dir", ctrlDir, "--kubeconfig", api.Kubeconfig())
	waitClaimBound(t, cs, "remote")
	lease, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, "volplane-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id := *lease.Spec.HolderIdentity; !strings.Contains(ctrls.Output(), "identity="+id) {
		t.Fatalf("lease held by %q, not the --kubeconfig controller manager:\n%s", id, ctrls.Output())
	}
	// It keeps nothing of a control plane in its data dir.
	if entries, _ := os.ReadDir(ctrlDir); len(entries) != 0 {
		t.Fatalf("controllers-only server wrote %v into its data dir", entries)
	}
}

// disableAllControllers is the flag that turns every volplane controller
// off.
func disableAllControllers() string {
	var names []string
	for _, d := range all.Descriptors() {
		names = append(names, d.Name)
	}
	return "--disable-controllers=" + strings.Join(names, ",")
}

// waitClaimBound waits until claim default/name is Bound.
func waitClaimBound(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pvc.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("claim %s", pvc.Status.Phase)
		}
		return nil
	})
}
