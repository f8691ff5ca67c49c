package csi

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/csitest"
	"volplane/internal/node/plugins"
)

func inlineSpec() *plugins.Spec {
	return &plugins.Spec{Name: "scratch", Volume: &corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{
		CSI: &corev1.CSIVolumeSource{Driver: driverName, FSType: ptr.To("xfs"),
			VolumeAttributes:     map[string]string{"size": "10Mi"},
			NodePublishSecretRef: &corev1.LocalObjectReference{Name: "publish"}},
	}}}
}

func inlineDir(r *rig) string {
	return plugins.PodVolumeDir(r.root, "uid-1", PluginName, "scratch")
}

func ephemeralDriver(podInfo bool) *storagev1.CSIDriver {
	return csiDriver(func(s *storagev1.CSIDriverSpec) {
		s.PodInfoOnMount = ptr.To(podInfo)
		s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}
	})
}

func setUpInlineVolume(r *rig) error {
	if err := os.MkdirAll(inlineDir(r), 0o750); err != nil {
		return err
	}
	return r.p.SetUp(context.Background(), plugins.SetUpArgs{Spec: inlineSpec(), Pod: testPod(), Dir: inlineDir(r)})
}

func TestInlineSetUpTearDown(t *testing.T) {
	pubSecret := secret("publish", "token", "p1")
	pubSecret.Namespace = "ns" // the pod's namespace
	r := newRig(t, csitest.NodeOptions{NoStage: true}, ephemeralDriver(true), pubSecret)
	s := inlineSpec()
	if r.p.Attachable(s) || r.p.CanDeviceMount(s) {
		t.Error("an inline volume is neither attached nor staged")
	}
	if name, err := r.p.VolumeName(s, testPod()); err != nil || name != "kubernetes.io/csi/uid-1-scratch" {
		t.Errorf("VolumeName = %q, %v", name, err)
	}
	if err := setUpInlineVolume(r); err != nil {
		t.Fatal(err)
	}
	wantHandle := fmt.Sprintf("csi-%x", sha256.Sum256([]byte("uid-1"+"scratch")))
	pub := r.node.LastPublish()
	wantCtx := map[string]string{"size": "10Mi", keyPodName: "web", keyPodNamespace: "ns", keyPodUID: "uid-1",
		keyServiceAccount: "sa", keyEphemeral: "true"}
	capb := pub.GetVolumeCapability()
	switch {
	case pub.GetVolumeId() != wantHandle:
		t.Errorf("volume handle %s, want %s", pub.GetVolumeId(), wantHandle)
	case pub.GetTargetPath() != inlineDir(r)+"/mount", pub.GetStagingTargetPath() != "":
		t.Errorf("publish at %s from %q", pub.GetTargetPath(), pub.GetStagingTargetPath())
	case fmt.Sprint(pub.GetVolumeContext()) != fmt.Sprint(wantCtx):
		t.Errorf("volume context %v, want %v", pub.GetVolumeContext(), wantCtx)
	case pub.GetSecrets()["token"] != "p1":
		t.Errorf("publish secrets keys %d", len(pub.GetSecrets()))
	case capb.GetMount().GetFsType() != "xfs" || capb.GetAccessMode().GetMode() != csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:
		t.Errorf("capability %v", capb)
	case len(pub.GetPublishContext()) != 0:
		t.Errorf("publish context %v for an unattached volume", pub.GetPublishContext())
	}
	data, err := readVolData(inlineDir(r))
	if err != nil || data.VolumeHandle != wantHandle || data.VolumeLifecycleMode != "Ephemeral" || data.SpecVolID != "scratch" {
		t.Errorf("vol_data.json = %+v, %v", data, err)
	}
	for _, a := range r.cs.Actions() {
		if a.GetResource().Resource == "volumeattachments" {
			t.Errorf("%s of a VolumeAttachment for an inline volume", a.GetVerb())
		}
	}
	// After a restart the volume manager only has the directory.
	if err := r.p.TearDown(context.Background(), inlineDir(r)); err != nil {
		t.Fatal(err)
	}
	if n := len(r.node.Published()); n != 0 {
		t.Errorf("%d publications left", n)
	}
	if _, err := os.Stat(inlineDir(r)); !os.IsNotExist(err) {
		t.Errorf("pod volume directory left: %v", err)
	}
}

func TestInlineLifecycleMode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		objs    []runtime.Object
		wantErr string
	}{
		{"no CSIDriver", nil, `volume mode "Ephemeral" not supported by driver fake.csi.volplane.io (no CSIDriver object)`},
		{"Persistent only", []runtime.Object{csiDriver(func(s *storagev1.CSIDriverSpec) {
			s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
		})}, `volume mode "Ephemeral" not supported by driver fake.csi.volplane.io (only supports ["Persistent"])`},
		{"Ephemeral without podInfoOnMount", []runtime.Object{ephemeralDriver(false)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{NoStage: true}, append(tc.objs, secretIn("ns", "publish"))...)
			err := setUpInlineVolume(r)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := r.node.LastPublish().GetVolumeContext()[keyEphemeral]; ok {
					t.Error("pod info keys without podInfoOnMount")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) ||
				!strings.Contains(err.Error(), "mounter.SetupAt failed to check volume lifecycle mode") {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if n := r.node.Calls("NodePublishVolume"); n != 0 {
				t.Errorf("NodePublishVolume called %d times", n)
			}
		})
	}
}

// An inline volume of a driver with requiresRepublish is published again
// like a PV, as upstream's kubelet does (the Secrets Store driver's
// inline volumes rely on it), until it is torn down.
func TestInlineRepublish(t *testing.T) {
	obj := ephemeralDriver(false)
	obj.Spec.RequiresRepublish = ptr.To(true)
	r := newRig(t, csitest.NodeOptions{NoStage: true}, obj, secretIn("ns", "publish"))
	if !r.p.RequiresRemount(inlineSpec()) {
		t.Error("RequiresRemount false for an inline volume of a driver with requiresRepublish")
	}
	if err := setUpInlineVolume(r); err != nil {
		t.Fatal(err)
	}
	select {
	case uid := <-r.remounts:
		if uid != "uid-1" {
			t.Errorf("remount of pod %s", uid)
		}
	case <-time.After(time.Minute): // a hang, not a speed
		t.Fatal("the pod of the inline volume was never asked to set it up again")
	}
	if err := r.p.TearDown(context.Background(), inlineDir(r)); err != nil {
		t.Fatal(err)
	}
	// Stop the periodic republish, waiting out a pass that listed the
	// volume before TearDown and may still ask for its pod: only a pass
	// started after TearDown must ask for nothing.
	if err := r.p.Close(); err != nil {
		t.Fatal(err)
	}
	for len(r.remounts) > 0 {
		<-r.remounts
	}
	r.p.republish()
	select {
	case uid := <-r.remounts:
		t.Errorf("pod %s asked to remount a volume torn down", uid)
	default:
	}
}

func TestPersistentNeedsPersistentMode(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""), csiDriver(func(s *storagev1.CSIDriverSpec) {
		s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}
	}))
	err := r.mount(t, spec(pv()), nil)
	if err == nil || !strings.Contains(err.Error(), `volume mode "Persistent" not supported by driver`) {
		t.Errorf("error = %v", err)
	}
}

func secretIn(ns, name string) *corev1.Secret {
	s := secret(name)
	s.Namespace = ns
	return s
}

// TearDown converges when the driver no longer knows the volume, as long
// as nothing is mounted at the target; a mount still there keeps the
// error.
func TestTearDownVolumeGone(t *testing.T) {
	for _, mounted := range []bool{false, true} {
		t.Run(fmt.Sprintf("mounted=%v", mounted), func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
			if err := r.mount(t, spec(pv()), nil); err != nil {
				t.Fatal(err)
			}
			target := r.p.ContentDir(podDir(r))
			if mounted {
				if err := r.p.host.Ops.BindMount(context.Background(), r.root, target, nil); err != nil {
					t.Fatal(err)
				}
			}
			r.node.Fail("NodeUnpublishVolume", codes.NotFound, "volume vol-1 does not exist")
			err := r.p.TearDown(context.Background(), podDir(r))
			_, statErr := os.Stat(podDir(r))
			switch {
			case mounted && err == nil:
				t.Error("TearDown succeeded with the target still mounted")
			case mounted && os.IsNotExist(statErr):
				t.Error("pod volume directory removed while mounted")
			case !mounted && err != nil:
				t.Errorf("TearDown = %v, want done", err)
			case !mounted && !os.IsNotExist(statErr):
				t.Errorf("pod volume directory left: %v", statErr)
			}
			if !mounted {
				return
			}
			// Any other error is kept whatever the target.
			r.node.Fail("NodeUnpublishVolume", codes.Unavailable, "driver busy")
			if err := r.p.host.Ops.Unmount(context.Background(), target); err != nil {
				t.Fatal(err)
			}
			if err := r.p.TearDown(context.Background(), podDir(r)); err == nil {
				t.Error("TearDown succeeded on Unavailable")
			}
		})
	}
}

func TestVerifyExhaustedResource(t *testing.T) {
	exhausted := func(code codes.Code) *storagev1.VolumeAttachment {
		va := attachment(false, "full")
		va.Status.AttachError.ErrorCode = ptr.To(int32(code))
		return va
	}
	periodic := csiDriver(func(s *storagev1.CSIDriverSpec) { s.NodeAllocatableUpdatePeriodSeconds = ptr.To[int64](60) })
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		spec *plugins.Spec
		want bool
	}{
		{"ResourceExhausted, period set", []runtime.Object{periodic, exhausted(codes.ResourceExhausted)}, spec(pv()), true},
		{"other code", []runtime.Object{periodic, exhausted(codes.Internal)}, spec(pv()), false},
		{"no period", []runtime.Object{csiDriver(func(*storagev1.CSIDriverSpec) {}), exhausted(codes.ResourceExhausted)}, spec(pv()), false},
		{"no attachment", []runtime.Object{periodic}, spec(pv()), false},
		{"inline volume", []runtime.Object{periodic, exhausted(codes.ResourceExhausted)}, inlineSpec(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, csitest.NodeOptions{}, tc.objs...)
			var refreshed []string
			r.p.cfg.RefreshAllocatable = func(_ context.Context, driver string) error {
				refreshed = append(refreshed, driver)
				return nil
			}
			if got := r.p.VerifyExhaustedResource(tc.spec); got != tc.want {
				t.Errorf("VerifyExhaustedResource = %v, want %v", got, tc.want)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.want]; len(refreshed) != want {
				t.Errorf("refreshed %v, want %d refreshes", refreshed, want)
			}
		})
	}
}
