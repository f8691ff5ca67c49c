package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/reconstruction"
)

// TestUncertainDevice: a device the actual state holds as uncertain (as
// reconstruction leaves a record whose path is not mounted, or a failed
// MountDevice) is unmounted when no pod wants it, and mounted again
// before SetUp when one does.
func TestUncertainDevice(t *testing.T) {
	spec := &plugins.Spec{Name: "data", Volume: &corev1.Volume{Name: "data"}}
	for _, tc := range []struct {
		name string
		// uncertain puts the device in the actual state as reconstruction
		// does; otherwise MountDevice fails for the pod first.
		uncertain bool
		podWants  bool
		want      string
	}{
		{name: "reconstructed, no pod", uncertain: true, want: "UnmountDevice"},
		{name: "reconstructed, pod wants it", uncertain: true, podWants: true, want: "MountDevice,SetUp a {global}"},
		{name: "MountDevice failed, pod gone", want: "MountDevice,UnmountDevice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fp := &fakePlugin{}
			pl := devPathPlugin{fp, root}
			global, _ := pl.DeviceMountPath(spec)
			desired, actual := cache.NewDesired(), cache.NewActual()
			store := reconstruction.Store{Root: root}
			cfg := testConfig(root, desired, actual)
			cfg.Attached = func() []corev1.AttachedVolume { return []corev1.AttachedVolume{{Name: "fake/data"}} }
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}
			want := cache.VolumeToMount{VolumeName: "fake/data", OuterName: "data", Plugin: pl, Spec: spec, Pod: pod,
				Attachable: true}
			step := func() { r.Reconcile(context.Background()); r.Wait() }
			if tc.uncertain {
				if err := store.WriteDevice(&reconstruction.DeviceRecord{Plugin: pl.Name(), VolumeName: "fake/data",
					MountPath: global, Volume: spec.Volume}); err != nil {
					t.Fatal(err)
				}
				actual.MarkDeviceUncertain("fake/data", pl, spec, global)
			} else {
				fp.mountDevErr = errors.New("stage timed out")
				desired.AddPodVolume(want)
				desired.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"fake/data"})
				step()
				if d, _ := actual.Device("fake/data"); !d.Uncertain {
					t.Fatalf("device after a failed MountDevice: %+v, want uncertain", d)
				}
				desired.DeletePod("a")
			}
			if tc.podWants {
				desired.AddPodVolume(want)
			}
			for range 3 {
				step()
			}
			if got, want := fp.Calls(), strings.ReplaceAll(tc.want, "{global}", global); got != want {
				t.Fatalf("calls %q, want %q", got, want)
			}
			recs, _, _ := store.DeviceRecords()
			d, ok := actual.Device("fake/data")
			if tc.podWants {
				if !ok || !d.Mounted || d.Uncertain || len(recs) != 1 {
					t.Fatalf("device %+v (%v), %d records; want mounted and certain with its record", d, ok, len(recs))
				}
				return
			}
			if ok || len(recs) != 0 {
				t.Fatalf("device %+v (%v), %d records left after UnmountDevice", d, ok, len(recs))
			}
		})
	}
}
