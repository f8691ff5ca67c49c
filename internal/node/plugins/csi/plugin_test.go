package csi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/csitest"
	"volplane/internal/csi/kube"
	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/plugins"
)

const (
	driverName = "fake.csi.volplane.io"
	nodeName   = "node1"
	handle     = "vol-1"
)

type rig struct {
	p        *Plugin
	remounts chan types.UID
	node     *csitest.Node
	cs       *fake.Clientset
	reg      *csidrivers.Registry
	root     string
}

func newRig(t *testing.T, opts csitest.NodeOptions, objs ...runtime.Object) *rig {
	t.Helper()
	opts.Name = driverName
	r := &rig{node: csitest.ServeNode(t, opts), cs: fake.NewClientset(objs...), reg: &csidrivers.Registry{}, root: t.TempDir(),
		remounts: make(chan types.UID, 10)}
	r.reg.Add(csidrivers.Driver{Name: driverName, Endpoint: r.node.Endpoint})
	p, err := New(Config{Drivers: r.reg, RepublishPeriod: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Init(&plugins.Host{RootDir: r.root, NodeName: nodeName, Ops: fakehost.New(), Client: r.cs,
		Recorder: record.NewFakeRecorder(10), Log: slog.Default(), Remount: func(uid types.UID) {
			select {
			case r.remounts <- uid:
			default:
			}
		}}); err != nil {
		t.Fatal(err)
	}
	r.p = p
	return r
}

func pv(mut ...func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
	v := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes:  []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			MountOptions: []string{"noatime"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: driverName, VolumeHandle: handle, FSType: "ext4",
				VolumeAttributes: map[string]string{"type": "dir"},
			}},
		},
	}
	for _, m := range mut {
		m(v)
	}
	return v
}

func spec(v *corev1.PersistentVolume) *plugins.Spec {
	return &plugins.Spec{Name: "data", PV: v, Volume: &corev1.Volume{Name: "data"}}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Spec: corev1.PodSpec{ServiceAccountName: "sa"}}
}

func attachment(attached bool, attachErr string) *storagev1.VolumeAttachment {
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: kube.AttachmentName(handle, driverName, nodeName)},
		Status: storagev1.VolumeAttachmentStatus{Attached: attached,
			AttachmentMetadata: map[string]string{"device": "/dev/fake"}},
	}
	if attachErr != "" {
		va.Status.AttachError = &storagev1.VolumeError{Message: attachErr}
	}
	return va
}

func csiDriver(mut func(*storagev1.CSIDriverSpec)) *storagev1.CSIDriver {
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driverName}}
	mut(&d.Spec)
	return d
}

func secret(name string, kv ...string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "secrets"}, Data: map[string][]byte{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Data[kv[i]] = []byte(kv[i+1])
	}
	return s
}

func podDir(r *rig) string {
	return plugins.PodVolumeDir(r.root, "uid-1", PluginName, "pvc-1")
}

// mount runs the volume manager's steps: MountDevice, then SetUp.
func (r *rig) mount(t *testing.T, s *plugins.Spec, fsGroup *int64) error {
	t.Helper()
	ctx := context.Background()
	gm, err := r.p.DeviceMountPath(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(gm, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := r.p.MountDevice(ctx, s, gm); err != nil {
		return err
	}
	if err := os.MkdirAll(podDir(r), 0o750); err != nil {
		t.Fatal(err)
	}
	return r.p.SetUp(ctx, plugins.SetUpArgs{Spec: s, Pod: testPod(), Dir: podDir(r), DeviceMountPath: gm, FSGroup: fsGroup})
}

func TestNamesAndPaths(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{})
	s := spec(pv())
	if !r.p.CanSupport(s) || r.p.CanSupport(&plugins.Spec{Volume: &corev1.Volume{}}) {
		t.Error("CanSupport wrong")
	}
	name, err := r.p.VolumeName(s, testPod())
	if want := "kubernetes.io/csi/" + driverName + "^" + handle; err != nil || name != want {
		t.Errorf("VolumeName = %q, %v; want %q", name, err, want)
	}
	gm, _ := r.p.DeviceMountPath(s)
	want := fmt.Sprintf("%s/plugins/kubernetes.io/csi/%s/%x/globalmount", r.root, driverName, sha256.Sum256([]byte(handle)))
	if gm != want {
		t.Errorf("DeviceMountPath = %s, want %s", gm, want)
	}
	if got := r.p.ContentDir("/d"); got != "/d/mount" {
		t.Errorf("ContentDir = %s", got)
	}
	inline := &plugins.Spec{Name: "x", Volume: &corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: driverName}}}}
	if !r.p.CanSupport(inline) {
		t.Error("inline CSI volume not taken: it would get no error of its own")
	}
	if name, err := r.p.VolumeName(inline, testPod()); err != nil || name != "kubernetes.io/csi/uid-1-x" {
		t.Errorf("inline VolumeName = %q, %v; want kubernetes.io/csi/uid-1-x", name, err)
	}
}

func TestAttachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want bool
	}{
		{"no CSIDriver", nil, true},
		{"attachRequired true", []runtime.Object{csiDriver(func(s *storagev1.CSIDriverSpec) { s.AttachRequired = ptr.To(true) })}, true},
		{"attachRequired false", []runtime.Object{csiDriver(func(s *storagev1.CSIDriverSpec) { s.AttachRequired = ptr.To(false) })}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{}, tc.objs...)
			if got := r.p.Attachable(spec(pv())); got != tc.want {
				t.Errorf("Attachable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStagePublishTearDown(t *testing.T) {
	v := pv(func(v *corev1.PersistentVolume) {
		v.Spec.CSI.NodeStageSecretRef = &corev1.SecretReference{Name: "stage", Namespace: "secrets"}
		v.Spec.CSI.NodePublishSecretRef = &corev1.SecretReference{Name: "publish", Namespace: "secrets"}
	})
	r := newRig(t, csitest.NodeOptions{SingleNodeMultiWriter: true},
		attachment(true, ""), secret("stage", "user", "s1"), secret("publish", "token", "p1"),
		csiDriver(func(s *storagev1.CSIDriverSpec) { s.PodInfoOnMount = ptr.To(true) }))
	s := spec(v)
	if err := r.mount(t, s, nil); err != nil {
		t.Fatal(err)
	}
	gm, _ := r.p.DeviceMountPath(s)
	st := r.node.LastStage()
	capb := st.GetVolumeCapability()
	switch {
	case st.GetVolumeId() != handle, st.GetStagingTargetPath() != gm:
		t.Errorf("stage %s at %s", st.GetVolumeId(), st.GetStagingTargetPath())
	case st.GetPublishContext()["device"] != "/dev/fake":
		t.Errorf("stage publish context %v", st.GetPublishContext())
	case st.GetSecrets()["user"] != "s1" || len(st.GetSecrets()) != 1:
		t.Errorf("stage secrets keys %d", len(st.GetSecrets()))
	case st.GetVolumeContext()["type"] != "dir" || len(st.GetVolumeContext()) != 1:
		t.Errorf("stage volume context %v", st.GetVolumeContext())
	case capb.GetMount().GetFsType() != "ext4" || capb.GetMount().GetMountFlags()[0] != "noatime":
		t.Errorf("stage capability %v", capb)
	case capb.GetAccessMode().GetMode() != csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		t.Errorf("RWO with SINGLE_NODE_MULTI_WRITER: mode %v", capb.GetAccessMode().GetMode())
	}
	data, err := readVolData(filepath.Dir(gm))
	if err != nil || data.DriverName != driverName || data.VolumeHandle != handle || data.AttachmentID != kube.AttachmentName(handle, driverName, nodeName) {
		t.Errorf("global vol_data.json = %+v, %v", data, err)
	}

	pub := r.node.LastPublish()
	wantCtx := map[string]string{"type": "dir", keyPodName: "web", keyPodNamespace: "ns", keyPodUID: "uid-1",
		keyServiceAccount: "sa", keyEphemeral: "false"}
	switch {
	case pub.GetTargetPath() != podDir(r)+"/mount", pub.GetStagingTargetPath() != gm:
		t.Errorf("publish %s from %s", pub.GetTargetPath(), pub.GetStagingTargetPath())
	case fmt.Sprint(pub.GetVolumeContext()) != fmt.Sprint(wantCtx):
		t.Errorf("publish volume context %v, want %v", pub.GetVolumeContext(), wantCtx)
	case pub.GetSecrets()["token"] != "p1" || len(pub.GetSecrets()) != 1:
		t.Errorf("publish secrets keys %d", len(pub.GetSecrets()))
	case pub.GetPublishContext()["device"] != "/dev/fake", pub.GetReadonly():
		t.Errorf("publish context %v readonly %v", pub.GetPublishContext(), pub.GetReadonly())
	}
	data, err = readVolData(podDir(r))
	if err != nil || data.SpecVolID != "pvc-1" || data.NodeName != nodeName {
		t.Errorf("pod vol_data.json = %+v, %v", data, err)
	}

	for _, a := range r.cs.Actions() {
		if a.GetResource().Resource == "volumeattachments" && a.GetVerb() != "get" {
			t.Errorf("%s of volumeattachments: a node may only get them", a.GetVerb())
		}
	}

	// Again, as after a restart: the same calls, nothing else.
	if err := r.mount(t, s, nil); err != nil {
		t.Fatalf("second mount: %v", err)
	}
	if n := len(r.node.Published()); n != 1 {
		t.Errorf("published %d times", n)
	}

	ctx := context.Background()
	if err := r.p.TearDown(ctx, podDir(r)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(podDir(r)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod volume dir left: %v", err)
	}
	if err := r.p.UnmountDevice(ctx, gm); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(gm)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("global dir left: %v", err)
	}
	if len(r.node.Staged())+len(r.node.Published()) != 0 {
		t.Errorf("left staged %v published %v", r.node.Staged(), r.node.Published())
	}
	// Both are idempotent: nothing set up is no error.
	if err := r.p.TearDown(ctx, podDir(r)); err != nil {
		t.Errorf("second TearDown: %v", err)
	}
	if err := r.p.UnmountDevice(ctx, gm); err != nil {
		t.Errorf("second UnmountDevice: %v", err)
	}
}

func TestAttachmentWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objs    []runtime.Object
		wantErr string
	}{
		{"no VolumeAttachment", nil, "has GET error for volume attachment"},
		{"not attached", []runtime.Object{attachment(false, "")}, "is not attached for volume attachment csi-"},
		{"attach error", []runtime.Object{attachment(false, "rpc error: code = NotFound desc = no volume")}, "rpc error: code = NotFound desc = no volume"},
		{"being deleted", []runtime.Object{deleting(attachment(true, ""))}, "volume attachment is being deleted"},
		{"no attach needed", []runtime.Object{csiDriver(func(s *storagev1.CSIDriverSpec) { s.AttachRequired = ptr.To(false) })}, ""},
		{"attached", []runtime.Object{attachment(true, "")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{}, tc.objs...)
			err := r.mount(t, spec(pv()), nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *plugins.AttachError
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ae) {
				t.Fatalf("error %v, want an AttachError %q", err, tc.wantErr)
			}
			if r.node.Calls("NodeStageVolume") != 0 {
				t.Error("staged before the attachment")
			}
		})
	}
}

func deleting(va *storagev1.VolumeAttachment) *storagev1.VolumeAttachment {
	now := metav1.Now()
	va.DeletionTimestamp = &now
	va.Finalizers = []string{"external-attacher/x"}
	return va
}

func TestErrors(t *testing.T) {
	t.Run("driver not registered", func(t *testing.T) {
		r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
		r.reg.Remove(driverName)
		err := r.mount(t, spec(pv()), nil)
		if err == nil || !strings.Contains(err.Error(), "driver name "+driverName+" not found in the list of registered CSI drivers") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("missing secret", func(t *testing.T) {
		r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
		err := r.mount(t, spec(pv(func(v *corev1.PersistentVolume) {
			v.Spec.CSI.NodeStageSecretRef = &corev1.SecretReference{Name: "gone", Namespace: "secrets"}
		})), nil)
		if err == nil || !strings.Contains(err.Error(), "gone") || r.node.Calls("NodeStageVolume") != 0 {
			t.Fatalf("error %v", err)
		}
	})
	for _, method := range []string{"NodeStageVolume", "NodePublishVolume"} {
		t.Run(method+" keeps the gRPC code", func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
			r.node.Fail(method, codes.ResourceExhausted, "full")
			err := r.mount(t, spec(pv()), nil)
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "full") {
				t.Fatalf("error %v, code %v", err, status.Code(err))
			}
		})
	}
	t.Run("unpublish failure keeps the directory", func(t *testing.T) {
		r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
		if err := r.mount(t, spec(pv()), nil); err != nil {
			t.Fatal(err)
		}
		r.node.Fail("NodeUnpublishVolume", codes.Internal, "busy")
		if err := r.p.TearDown(context.Background(), podDir(r)); status.Code(err) != codes.Internal {
			t.Fatalf("TearDown error %v", err)
		}
		if _, err := readVolData(podDir(r)); err != nil {
			t.Fatalf("vol_data.json gone after a failed unpublish: %v", err)
		}
	})
}

func TestNoStageDriver(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{NoStage: true}, attachment(true, ""))
	if err := r.mount(t, spec(pv()), nil); err != nil {
		t.Fatal(err)
	}
	if r.node.Calls("NodeStageVolume") != 0 {
		t.Error("NodeStageVolume called on a driver without STAGE_UNSTAGE_VOLUME")
	}
	if p := r.node.LastPublish(); p.GetStagingTargetPath() != "" {
		t.Errorf("staging path %q sent to a driver that does not stage", p.GetStagingTargetPath())
	}
	gm, _ := r.p.DeviceMountPath(spec(pv()))
	ctx := context.Background()
	if err := r.p.TearDown(ctx, podDir(r)); err != nil {
		t.Fatal(err)
	}
	if err := r.p.UnmountDevice(ctx, gm); err != nil || r.node.Calls("NodeUnstageVolume") != 0 {
		t.Fatalf("UnmountDevice: %v, unstage calls %d", err, r.node.Calls("NodeUnstageVolume"))
	}
}

func TestFSGroup(t *testing.T) {
	gid := ptr.To[int64](2000)
	rwx := func(v *corev1.PersistentVolume) {
		v.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
	}
	noFS := func(v *corev1.PersistentVolume) { v.Spec.CSI.FSType = "" }
	for _, tc := range []struct {
		name     string
		v        *corev1.PersistentVolume
		readOnly bool
		fsGroup  *int64
		policy   storagev1.FSGroupPolicy
		want     bool
	}{
		{"no fsGroup", pv(), false, nil, storagev1.FileFSGroupPolicy, false},
		{"read-only", pv(), true, gid, storagev1.FileFSGroupPolicy, false},
		{"None", pv(), false, gid, storagev1.NoneFSGroupPolicy, false},
		{"File without fsType, RWX", pv(noFS, rwx), false, gid, storagev1.FileFSGroupPolicy, true},
		{"RWOWithFSType", pv(), false, gid, storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy, true},
		{"RWOWithFSType without fsType", pv(noFS), false, gid, storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy, false},
		{"RWOWithFSType RWX", pv(rwx), false, gid, storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy, false},
	} {
		s := spec(tc.v)
		s.ReadOnly = tc.readOnly
		if got := supportsFSGroup(s, tc.fsGroup, tc.policy); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if fsGroupPolicy(nil) != storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy {
		t.Error("default policy is not ReadWriteOnceWithFSType")
	}

	// A driver with VOLUME_MOUNT_GROUP gets the group and applies it.
	r := newRig(t, csitest.NodeOptions{VolumeMountGroup: true}, attachment(true, ""),
		csiDriver(func(s *storagev1.CSIDriverSpec) { s.FSGroupPolicy = ptr.To(storagev1.FileFSGroupPolicy) }))
	if err := r.mount(t, spec(pv()), gid); err != nil {
		t.Fatal(err)
	}
	if g := r.node.LastPublish().GetVolumeCapability().GetMount().GetVolumeMountGroup(); g != "2000" {
		t.Errorf("volume_mount_group %q, want 2000", g)
	}
}

func TestClientPerEndpoint(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
	if err := r.mount(t, spec(pv()), nil); err != nil {
		t.Fatal(err)
	}
	clients := func() int {
		r.p.mu.Lock()
		defer r.p.mu.Unlock()
		return len(r.p.clients)
	}
	if n := clients(); n != 1 {
		t.Fatalf("%d clients for one endpoint", n)
	}
	// The driver comes back on another socket: the old client goes.
	other := csitest.ServeNode(t, csitest.NodeOptions{Name: driverName})
	r.reg.Add(csidrivers.Driver{Name: driverName, Endpoint: other.Endpoint})
	if n := clients(); n != 0 {
		t.Fatalf("%d clients after the driver moved", n)
	}
	if err := r.p.TearDown(context.Background(), podDir(r)); err != nil || other.Calls("NodeUnpublishVolume") != 1 {
		t.Fatalf("TearDown through the new endpoint: %v, %d calls", err, other.Calls("NodeUnpublishVolume"))
	}
}

func TestBlockPaths(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
	s := spec(pv(func(v *corev1.PersistentVolume) { v.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock) }))
	s.Block = true
	ctx := context.Background()
	staging, err := r.p.DeviceMountPath(s)
	if want := r.root + "/plugins/kubernetes.io/csi/volumeDevices/staging/pvc-1"; err != nil || staging != want {
		t.Fatalf("staging path %s, %v; want %s", staging, err, want)
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := r.p.MountDevice(ctx, s, staging); err != nil {
		t.Fatal(err)
	}
	if c := r.node.LastStage().GetVolumeCapability(); c.GetBlock() == nil || r.node.LastStage().GetStagingTargetPath() != staging {
		t.Errorf("stage %v", r.node.LastStage())
	}
	if _, err := readVolData(r.root + "/plugins/kubernetes.io/csi/volumeDevices/pvc-1/data"); err != nil {
		t.Errorf("block vol_data.json: %v", err)
	}
	dev, err := r.p.MapPodDevice(ctx, plugins.SetUpArgs{Spec: s, Pod: testPod(), DeviceMountPath: staging})
	if want := r.root + "/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1/uid-1"; err != nil || dev != want {
		t.Fatalf("MapPodDevice = %s, %v; want %s", dev, err, want)
	}
	if pub := r.node.LastPublish(); pub.GetVolumeCapability().GetBlock() == nil || pub.GetStagingTargetPath() != staging {
		t.Errorf("publish %v", pub)
	}
	if err := r.p.UnmapPodDevice(ctx, s, "uid-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.p.UnmountDevice(ctx, staging); err != nil {
		t.Fatal(err)
	}
	if len(r.node.Staged())+len(r.node.Published()) != 0 {
		t.Errorf("left staged %v published %v", r.node.Staged(), r.node.Published())
	}
	for _, p := range []string{staging, filepath.Dir(dev), r.root + "/plugins/kubernetes.io/csi/volumeDevices/pvc-1"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
