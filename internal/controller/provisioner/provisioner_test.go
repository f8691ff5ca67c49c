package provisioner

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
)

func TestProvisionImmediate(t *testing.T) {
	sc := class("fast", storagev1.VolumeBindingImmediate, map[string]string{
		"type":                      "dir",
		"csi.storage.k8s.io/fstype": "xfs",
		"csi.storage.k8s.io/provisioner-secret-name":      "${pvc.name}-creds",
		"csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
		"csi.storage.k8s.io/node-stage-secret-name":       "stage-${pvc.annotations['team']}",
		"csi.storage.k8s.io/node-stage-secret-namespace":  "${pvc.namespace}",
	})
	sc.MountOptions = []string{"noatime"}
	pvc := claim("data", "fast", map[string]string{"team": "blue"})
	secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data-creds"}, Data: map[string][]byte{"key": []byte("s3cret")}}
	n, cn := node("n1", "zone-a")
	h := newHarness(t, csitest.Options{}, sc, pvc, secret, n, cn)
	ctx := context.Background()

	if err := h.c.syncClaim(ctx, "default/data"); err != nil {
		t.Fatal(err)
	}
	vols := h.drv.Volumes()
	v, ok := vols["pvc-uid-data"]
	if len(vols) != 1 || !ok {
		t.Fatalf("backend volumes %v, want pvc-uid-data", vols)
	}
	if !reflect.DeepEqual(v.Parameters, map[string]string{"type": "dir"}) || v.Secrets["key"] != "s3cret" || v.Bytes != 1<<30 {
		t.Errorf("CreateVolume got parameters %v, secret keys %d, %d bytes", v.Parameters, len(v.Secrets), v.Bytes)
	}
	if len(v.Requisite) != 1 || v.Requisite[0][csitest.TopologyKey] != "zone-a" {
		t.Errorf("requisite %v, want the one node's zone", v.Requisite)
	}
	pv := h.volume("pvc-uid-data")
	if pv == nil {
		t.Fatal("no PV")
	}
	src := pv.Spec.CSI
	switch {
	case src == nil || src.Driver != driver || src.VolumeHandle != v.ID || src.FSType != "xfs" || src.VolumeAttributes["name"] != "pvc-uid-data":
		t.Errorf("csi source %+v", src)
	case src.NodeStageSecretRef == nil || src.NodeStageSecretRef.Name != "stage-blue" || src.NodeStageSecretRef.Namespace != "default":
		t.Errorf("node stage secret %+v", src.NodeStageSecretRef)
	case pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID || pv.Spec.StorageClassName != "fast":
		t.Errorf("claimRef %+v class %q", pv.Spec.ClaimRef, pv.Spec.StorageClassName)
	case pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete || !slices.Equal(pv.Spec.MountOptions, []string{"noatime"}):
		t.Errorf("reclaim %s mount options %v", pv.Spec.PersistentVolumeReclaimPolicy, pv.Spec.MountOptions)
	case pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] != driver || !slices.Contains(pv.Finalizers, Finalizer):
		t.Errorf("annotations %v finalizers %v", pv.Annotations, pv.Finalizers)
	case pv.Annotations[annDeletionSecretName] != "data-creds" || pv.Annotations[annDeletionSecretNamespace] != "default":
		t.Errorf("deletion secret annotations %v", pv.Annotations)
	case pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "zone-a":
		t.Errorf("node affinity %+v", pv.Spec.NodeAffinity)
	}
	if q := pv.Spec.Capacity[v1.ResourceStorage]; q.Value() != 1<<30 {
		t.Errorf("capacity %s", q.String())
	}
	events := h.events()
	want := []string{
		`Normal Provisioning External provisioner is provisioning volume for claim "default/data"`,
		"Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-data",
	}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}

	// Again: the PV exists, nothing is called.
	if err := h.c.syncClaim(ctx, "default/data"); err != nil {
		t.Fatal(err)
	}
	if n := h.drv.Calls("CreateVolume"); n != 1 {
		t.Errorf("CreateVolume called %d times", n)
	}
}

func TestNotOurs(t *testing.T) {
	other := claim("other", "fast", nil)
	other.Annotations[storagehelpers.AnnStorageProvisioner] = "someone.else"
	other.Annotations[storagehelpers.AnnBetaStorageProvisioner] = "someone.else"
	bound := claim("bound", "fast", nil)
	bound.Spec.VolumeName = "pv-1"
	h := newHarness(t, csitest.Options{},
		class("fast", storagev1.VolumeBindingImmediate, nil),
		class("late", storagev1.VolumeBindingWaitForFirstConsumer, nil),
		other, bound, claim("waiting", "late", nil))
	for _, key := range []string{"default/other", "default/bound", "default/waiting", "default/gone"} {
		if err := h.c.syncClaim(context.Background(), key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	if n := h.drv.Calls("CreateVolume"); n != 0 {
		t.Errorf("CreateVolume called %d times", n)
	}
}

func TestProvisionFailure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       codes.Code
		noTopology bool
		reschedule bool
	}{
		{"resource exhausted at the selected node", codes.ResourceExhausted, false, true},
		{"invalid argument", codes.InvalidArgument, false, false},
		{"resource exhausted, driver without topology", codes.ResourceExhausted, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, cn := node("n1", "zone-a")
			pvc := claim("data", "late", map[string]string{storagehelpers.AnnSelectedNode: "n1"})
			h := newHarness(t, csitest.Options{NoTopology: tc.noTopology},
				class("late", storagev1.VolumeBindingWaitForFirstConsumer, nil), pvc, n, cn)
			h.drv.Fail("CreateVolume", tc.code, "no good")
			err := h.c.syncClaim(context.Background(), "default/data")
			if client.Code(err) != tc.code {
				t.Fatalf("error %v, want code %v", err, tc.code)
			}
			if !h.hasEvent(`Warning ProvisioningFailed failed to provision volume with StorageClass "late": rpc error: code = ` + tc.code.String() + " desc = no good") {
				t.Error("no ProvisioningFailed event quoting the status")
			}
			got, _ := h.cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data", metav1.GetOptions{})
			if _, kept := got.Annotations[storagehelpers.AnnSelectedNode]; kept == tc.reschedule {
				t.Errorf("selected node kept=%v, want reschedule=%v", kept, tc.reschedule)
			}
			if h.volume("pvc-uid-data") != nil {
				t.Error("a PV was created")
			}
		})
	}
}

func TestMissingSecretCallsNothing(t *testing.T) {
	sc := class("fast", storagev1.VolumeBindingImmediate, map[string]string{
		"csi.storage.k8s.io/provisioner-secret-name":      "nope",
		"csi.storage.k8s.io/provisioner-secret-namespace": "default",
	})
	h := newHarness(t, csitest.Options{}, sc, claim("data", "fast", nil))
	if err := h.c.syncClaim(context.Background(), "default/data"); err == nil {
		t.Fatal("no error")
	}
	if !h.hasEvent(`Warning ProvisioningFailed failed to provision volume with StorageClass "fast": error getting secret nope in namespace default`) {
		t.Error("no ProvisioningFailed event naming the secret")
	}
	if n := h.drv.Calls("CreateVolume"); n != 0 {
		t.Errorf("CreateVolume called %d times", n)
	}
}

// TestCrashBetweenCreateVolumeAndPV: the process dies after CreateVolume,
// while writing the PV. After a restart there is one backend volume and
// one PV.
func TestCrashBetweenCreateVolumeAndPV(t *testing.T) {
	h := newHarness(t, csitest.Options{}, class("fast", storagev1.VolumeBindingImmediate, nil), claim("data", "fast", nil))
	ctx, crash := context.WithCancel(context.Background())
	h.cs.PrependReactor("create", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		crash()
		return true, nil, errors.New("connection reset")
	})
	if err := h.c.syncClaim(ctx, "default/data"); err == nil {
		t.Fatal("no error from the crashed sync")
	}
	if len(h.drv.Volumes()) != 1 || h.volume("pvc-uid-data") != nil {
		t.Fatalf("after the crash: %d backend volumes, PV %v", len(h.drv.Volumes()), h.volume("pvc-uid-data") != nil)
	}
	h.cs.ReactionChain = h.cs.ReactionChain[1:]

	h.start(Config{})
	if err := h.c.syncClaim(context.Background(), "default/data"); err != nil {
		t.Fatal(err)
	}
	if n := len(h.drv.Volumes()); n != 1 {
		t.Errorf("%d backend volumes after restart, want 1", n)
	}
	pvs, _ := h.cs.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
	if len(pvs.Items) != 1 || pvs.Items[0].Spec.CSI.VolumeHandle != h.drv.Volumes()["pvc-uid-data"].ID {
		t.Errorf("PVs %v", pvs.Items)
	}
}

// TestPVWriteFailsCleansUp: when the PV cannot be written (without a
// crash), the backend volume is deleted again, as upstream does.
func TestPVWriteFailsCleansUp(t *testing.T) {
	h := newHarness(t, csitest.Options{}, class("fast", storagev1.VolumeBindingImmediate, nil), claim("data", "fast", nil))
	h.cs.PrependReactor("create", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcd is down")
	})
	if err := h.c.syncClaim(context.Background(), "default/data"); err == nil {
		t.Fatal("no error")
	}
	if n := len(h.drv.Volumes()); n != 0 {
		t.Errorf("%d backend volumes left", n)
	}
	if !h.hasEvent("Warning ProvisioningFailed Error creating provisioned PV object for claim default/data: etcd is down. Deleting the volume.") {
		t.Error("no ProvisioningFailed event")
	}
}

func releasedVolume(h *harness, reclaim v1.PersistentVolumeReclaimPolicy) *v1.PersistentVolume {
	v, err := h.cli.CreateVolume(context.Background(), &client.CreateVolumeRequest{Name: "pvc-old", RequiredBytes: 1 << 30,
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}})
	if err != nil {
		h.t.Fatal(err)
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-old", UID: "pv-uid", Finalizers: []string{Finalizer, "kubernetes.io/pv-protection"},
			Annotations: map[string]string{storagehelpers.AnnDynamicallyProvisioned: driver,
				annDeletionSecretName: "del", annDeletionSecretNamespace: "default"}},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			ClaimRef:                      &v1.ObjectReference{Namespace: "default", Name: "old", UID: "gone"},
			PersistentVolumeSource:        v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: v.ID}},
		},
		Status: v1.PersistentVolumeStatus{Phase: v1.VolumeReleased},
	}
	return pv
}

func TestDeleteReleased(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "ok", true: "driver fails"}[fail], func(t *testing.T) {
			h := newHarness(t, csitest.Options{})
			pv := releasedVolume(h, v1.PersistentVolumeReclaimDelete)
			secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "del"}, Data: map[string][]byte{"k": []byte("v")}}
			h.cs.CoreV1().Secrets("default").Create(context.Background(), secret, metav1.CreateOptions{})
			h.cs.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{})
			h.start(Config{})
			if fail {
				h.drv.Fail("DeleteVolume", codes.FailedPrecondition, "busy")
			}
			err := h.c.syncVolume(context.Background(), "pvc-old")
			got := h.volume("pvc-old")
			if fail {
				if err == nil || len(h.drv.Volumes()) != 1 || got == nil || !slices.Contains(got.Finalizers, Finalizer) {
					t.Errorf("err %v, volumes %d, PV %v", err, len(h.drv.Volumes()), got)
				}
				if !h.hasEvent("Warning VolumeFailedDelete rpc error: code = FailedPrecondition desc = busy") {
					t.Error("no VolumeFailedDelete event")
				}
				return
			}
			if err != nil || len(h.drv.Volumes()) != 0 {
				t.Fatalf("err %v, %d backend volumes left", err, len(h.drv.Volumes()))
			}
			if got != nil {
				t.Errorf("PV still there: %v", got.Finalizers)
			}
		})
	}
}

// TestDeleteWaitsForDetach: a released volume that a VolumeAttachment
// still names is not handed to DeleteVolume, as upstream's
// external-provisioner (canDeleteVolume) refuses it for drivers with
// PUBLISH_UNPUBLISH_VOLUME: VolumeFailedDelete "persistentvolume X is still
// attached to node N", and the delete once the attachment is gone. A driver
// without ControllerPublish is never asked to wait.
func TestDeleteWaitsForDetach(t *testing.T) {
	for _, publish := range []bool{true, false} {
		t.Run(map[bool]string{true: "publish", false: "no publish"}[publish], func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, csitest.Options{NoPublish: !publish})
			pv := releasedVolume(h, v1.PersistentVolumeReclaimDelete)
			h.cs.CoreV1().Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "del"}}, metav1.CreateOptions{})
			h.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
			va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "csi-va"},
				Spec: storagev1.VolumeAttachmentSpec{Attacher: driver, NodeName: "node-a",
					Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pvc-old")}}}
			h.cs.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
			h.start(Config{})
			err := h.c.syncVolume(ctx, "pvc-old")
			if !publish {
				if err != nil || h.drv.Calls("DeleteVolume") != 1 {
					t.Fatalf("err %v, DeleteVolume called %d times, want once", err, h.drv.Calls("DeleteVolume"))
				}
				return
			}
			if err == nil || h.drv.Calls("DeleteVolume") != 0 {
				t.Fatalf("err %v, DeleteVolume called %d times, want an error and no call", err, h.drv.Calls("DeleteVolume"))
			}
			if !h.hasEvent("Warning VolumeFailedDelete persistentvolume pvc-old is still attached to node node-a") {
				t.Error("no VolumeFailedDelete event naming the node")
			}
			// The PV's add is the one thing queued at start; the detach
			// queues the volume again, not the backoff.
			next := func(what string) string {
				queued := make(chan string, 1)
				go func() { k, _ := h.c.volumeQueue.Get(); h.c.volumeQueue.Done(k); queued <- k }()
				select {
				case k := <-queued:
					return k
				case <-time.After(30 * time.Second):
					h.c.volumeQueue.ShutDown()
					t.Fatalf("nothing queued for %s", what)
					return ""
				}
			}
			next("the volume's add")
			h.cs.StorageV1().VolumeAttachments().Delete(ctx, "csi-va", metav1.DeleteOptions{})
			if k := next("the detach"); k != "pvc-old" {
				t.Fatalf("queued %q after the detach, want pvc-old", k)
			}
			if err := h.c.syncVolume(ctx, "pvc-old"); err != nil || len(h.drv.Volumes()) != 0 {
				t.Fatalf("after detach: err %v, %d backend volumes left", err, len(h.drv.Volumes()))
			}
		})
	}
}

// TestDeleteReleasedOnce: the API keeps a deleted PV while another
// finalizer (kubernetes.io/pv-protection) holds it, so the sync that the
// finalizer's removal queued found the PV still Released and called
// DeleteVolume a second time, ~100 ms after the first.
func TestDeleteReleasedOnce(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	pv := releasedVolume(h, v1.PersistentVolumeReclaimDelete)
	ctx := context.Background()
	secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "del"}}
	h.cs.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{})
	h.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	// The API's delete: an object with finalizers only gets its deletion
	// timestamp.
	gvr := v1.SchemeGroupVersion.WithResource("persistentvolumes")
	h.cs.PrependReactor("delete", "persistentvolumes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := h.cs.Tracker().Get(gvr, "", a.(k8stesting.DeleteAction).GetName())
		if err != nil || len(obj.(*v1.PersistentVolume).Finalizers) == 0 {
			return false, nil, nil
		}
		pv := obj.(*v1.PersistentVolume).DeepCopy()
		now := metav1.Now()
		pv.DeletionTimestamp = &now
		return true, nil, h.cs.Tracker().Update(gvr, pv, "")
	})
	h.start(Config{})
	for i := range 2 {
		if err := h.c.syncVolume(ctx, "pvc-old"); err != nil {
			t.Fatalf("sync %d: %v", i+1, err)
		}
	}
	if n := h.drv.Calls("DeleteVolume"); n != 1 {
		t.Errorf("DeleteVolume called %d times, want 1", n)
	}
	got := h.volume("pvc-old")
	if got == nil || got.DeletionTimestamp == nil || slices.Contains(got.Finalizers, Finalizer) {
		t.Errorf("want the PV being deleted without %s, got %v", Finalizer, got)
	}
}

func TestRetainKeepsBackend(t *testing.T) {
	h := newHarness(t, csitest.Options{})
	pv := releasedVolume(h, v1.PersistentVolumeReclaimRetain)
	now := metav1.Now()
	pv.DeletionTimestamp = &now
	h.cs.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{})
	h.start(Config{})
	if err := h.c.syncVolume(context.Background(), "pvc-old"); err != nil {
		t.Fatal(err)
	}
	if len(h.drv.Volumes()) != 1 {
		t.Error("a Retain volume's backend was deleted")
	}
	if got := h.volume("pvc-old"); got == nil || slices.Contains(got.Finalizers, Finalizer) {
		t.Errorf("finalizer not removed from a deleted Retain volume: %v", got)
	}
}

func TestTopology(t *testing.T) {
	n1, c1 := node("n1", "a")
	n2, c2 := node("n2", "b")
	n3, c3 := node("n3", "c")
	objs := []runtime.Object{n1, c1, n2, c2, n3, c3}
	late := class("late", storagev1.VolumeBindingWaitForFirstConsumer, nil)
	allowed := class("allowed", storagev1.VolumeBindingImmediate, nil)
	allowed.AllowedTopologies = []v1.TopologySelectorTerm{{MatchLabelExpressions: []v1.TopologySelectorLabelRequirement{
		{Key: csitest.TopologyKey, Values: []string{"x", "y"}}}}}
	seg := func(zones ...string) []client.Topology {
		var out []client.Topology
		for _, z := range zones {
			out = append(out, client.Topology{csitest.TopologyKey: z})
		}
		return out
	}
	for _, tc := range []struct {
		name                 string
		class                *storagev1.StorageClass
		selected             *v1.Node
		strict               bool
		requisite, preferred []client.Topology
	}{
		{"selected node", late, n2, false, seg("a", "b", "c"), seg("b", "c", "a")},
		{"selected node, strict", late, n2, true, seg("b"), seg("b")},
		{"allowed topologies", allowed, nil, false, seg("x", "y"), nil},
		{"every node", class("imm", storagev1.VolumeBindingImmediate, nil), nil, false, seg("a", "b", "c"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, csitest.Options{}, objs...)
			h.start(Config{StrictTopology: tc.strict})
			req, pref, err := h.c.requirements(claim("data", tc.class.Name, nil), tc.class, tc.selected)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req, tc.requisite) {
				t.Errorf("requisite %v, want %v", req, tc.requisite)
			}
			if tc.preferred != nil && !reflect.DeepEqual(pref, tc.preferred) {
				t.Errorf("preferred %v, want %v", pref, tc.preferred)
			}
			if len(pref) != len(req) {
				t.Errorf("preferred %v is not a rotation of requisite", pref)
			}
		})
	}
}

func TestSecretRef(t *testing.T) {
	pvc := claim("data", "x", map[string]string{"team": "blue"})
	for _, tc := range []struct {
		name, ns string
		want     *v1.SecretReference
		err      string
	}{
		{"", "", nil, ""},
		{"${pvc.name}-${pvc.annotations['team']}", "${pvc.namespace}", &v1.SecretReference{Name: "data-blue", Namespace: "default"}, ""},
		{"s-${pv.name}", "fixed", &v1.SecretReference{Name: "s-pvc-1", Namespace: "fixed"}, ""},
		{"x", "${pvc.name}", nil, "invalid tokens"},
		{"${pvc.uid}", "ns", nil, "invalid tokens"},
		{"x", "", nil, "either name and namespace"},
		{"Bad_Name", "ns", nil, "not a valid secret name"},
	} {
		params := map[string]string{}
		if tc.name != "" {
			params[provisionerSecret.name] = tc.name
		}
		if tc.ns != "" {
			params[provisionerSecret.namespace] = tc.ns
		}
		got, err := secretRef(provisionerSecret, params, "pvc-1", pvc)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q/%q: err %v, want %q", tc.name, tc.ns, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q/%q = %v, %v; want %v", tc.name, tc.ns, got, err, tc.want)
		}
	}
}

func TestDataSources(t *testing.T) {
	src := claim("src", "fast", nil)
	src.Spec.VolumeName = "pv-src"
	src.Status.Phase = v1.ClaimBound
	srcPV := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-src"},
		Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "vol-src"}}}}
	clone := claim("clone", "fast", nil)
	clone.Spec.DataSource = &v1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "src"}
	fromSnap := claim("snap", "fast", nil)
	fromSnap.Spec.DataSource = &v1.TypedLocalObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "s1"}
	h := newHarness(t, csitest.Options{}, class("fast", storagev1.VolumeBindingImmediate, nil), src, srcPV, clone, fromSnap)

	if err := h.c.syncClaim(context.Background(), "default/clone"); err != nil {
		t.Fatal(err)
	}
	if v := h.drv.Volumes()["pvc-uid-clone"]; v.Source != "vol-src" {
		t.Errorf("clone made from %q, want vol-src", v.Source)
	}
	h.events()
	if err := h.c.syncClaim(context.Background(), "default/snap"); err == nil {
		t.Fatal("a snapshot source was accepted")
	}
	if _, made := h.drv.Volumes()["pvc-uid-snap"]; made || !h.hasEvent(`Warning ProvisioningFailed failed to provision volume with StorageClass "fast": data source VolumeSnapshot "s1" is not supported`) {
		t.Errorf("volume made %v, or no ProvisioningFailed event", made)
	}
}
