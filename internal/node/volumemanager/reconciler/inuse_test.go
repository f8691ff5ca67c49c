package reconciler

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
)

// TestWaitsForReportedInUse: an attachable volume the actual state does
// not have is neither staged nor set up until the Node's status.volumesAttached
// lists it and a status write has listed it in volumesInUse (upstream's
// VerifyControllerAttachedVolume: the attach/detach controller never
// detaches a volume the node reports in use, so staging before that write
// races a detach). A volume the actual state already has (reconstructed
// after a restart, or mounted for another pod) does not wait for the mark.
// The wait emits no event, as upstream's.
func TestWaitsForReportedInUse(t *testing.T) {
	spec := &plugins.Spec{Name: "data", Volume: &corev1.Volume{Name: "data"}}
	for _, tc := range []struct {
		name     string
		attached bool
		reported bool
		// known puts the volume in the actual state first: "device" as
		// reconstruction does, "pod" mounted for pod z.
		known string
		want  string
	}{
		{name: "attached, not reported in use", attached: true, want: ""},
		{name: "reported in use, not attached", reported: true, want: ""},
		{name: "attached and reported in use", attached: true, reported: true, want: "MountDevice,SetUp a {global}"},
		{name: "reconstructed, not reported in use", attached: true, known: "device", want: "MountDevice,SetUp a {global}"},
		{name: "mounted for another pod, not reported in use", attached: true, known: "pod", want: "SetUp a {global}"},
		{name: "reconstructed, not attached", known: "device", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fp := &fakePlugin{}
			pl := devPathPlugin{fp, root}
			global, _ := pl.DeviceMountPath(spec)
			desired, actual := cache.NewDesired(), cache.NewActual()
			var attached []corev1.AttachedVolume
			if tc.attached {
				attached = []corev1.AttachedVolume{{Name: "fake/data"}}
			}
			rec := record.NewFakeRecorder(10)
			cfg := testConfig(root, desired, actual)
			cfg.Recorder = rec
			cfg.Attached = func() []corev1.AttachedVolume { return attached }
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			switch tc.known {
			case "device":
				actual.MarkDeviceUncertain("fake/data", pl, spec, global)
			case "pod":
				actual.MarkDeviceMounted("fake/data", pl, spec, global)
				z := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "z"}}
				desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/data", OuterName: "data", Plugin: pl, Spec: spec,
					Pod: z, Attachable: true})
				actual.MarkMounted(cache.MountedVolume{VolumeName: "fake/data", OuterName: "data", PodUID: "z", Plugin: pl,
					Spec: spec, Dir: filepath.Join(root, "pods/z/volumes/data")})
			}
			desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/data", OuterName: "data", Plugin: pl, Spec: spec,
				Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}, Attachable: true})
			if tc.reported {
				desired.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"fake/data"})
			}
			for range 3 {
				r.Reconcile(context.Background())
				r.Wait()
			}
			if got, want := fp.Calls(), strings.ReplaceAll(tc.want, "{global}", global); got != want {
				t.Fatalf("calls %q, want %q", got, want)
			}
			select {
			case ev := <-rec.Events:
				t.Fatalf("event %q while waiting", ev)
			default:
			}
		})
	}
}
