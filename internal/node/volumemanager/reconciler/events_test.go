package reconciler

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/reconstruction"
)

// blockDevPlugin stages a block device and maps it per pod, as CSI does.
type blockDevPlugin struct{ devPathPlugin }

func (blockDevPlugin) MapPodDevice(context.Context, plugins.SetUpArgs) (string, error) {
	return "", errors.New("not mapped")
}
func (blockDevPlugin) UnmapPodDevice(context.Context, *plugins.Spec, types.UID) error { return nil }

var _ plugins.PodBlockMapper = blockDevPlugin{}

// TestEventWording: a failed operation's event on the pod names the
// volume as upstream's volume spec does (the PV for a claim's volume) and
// carries upstream's reason and prefix, the block ones for a block volume
// (pkg/volume/util/operationexecutor's GenerateMountVolumeFunc and
// GenerateMapVolumeFunc); an attachment found incomplete fails upstream's
// WaitForAttach step.
func TestEventWording(t *testing.T) {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"}}
	pinned := pv.DeepCopy()
	pinned.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: corev1.NodeSelectorOpIn, Values: []string{"elsewhere"}}},
	}}}}
	for _, tc := range []struct {
		name      string
		spec      *plugins.Spec
		mountErr  error
		setUpErr  error
		attached  bool
		wantEvent string
	}{
		{"pod volume SetUp", &plugins.Spec{Name: "v"}, nil, errors.New("boom"), false,
			`Warning FailedMount MountVolume.SetUp failed for volume "v" : boom`},
		{"claim volume SetUp", &plugins.Spec{Name: "v", PV: pv}, nil, errors.New("boom"), false,
			`Warning FailedMount MountVolume.SetUp failed for volume "pvc-1" : boom`},
		{"claim volume MountDevice", &plugins.Spec{Name: "v", PV: pv}, errors.New("boom"), nil, true,
			`Warning FailedMount MountVolume.MountDevice failed for volume "pvc-1" : boom`},
		{"block volume device", &plugins.Spec{Name: "v", PV: pv, Block: true}, errors.New("boom"), nil, true,
			`Warning FailedMapVolume MapVolume.SetUpDevice failed for volume "pvc-1" : boom`},
		{"attachment incomplete", &plugins.Spec{Name: "v", PV: pv}, &plugins.AttachError{Err: errors.New("not attached")}, nil, true,
			`Warning FailedMount MountVolume.WaitForAttach failed for volume "pvc-1" : not attached`},
		{"block attachment incomplete", &plugins.Spec{Name: "v", PV: pv, Block: true}, &plugins.AttachError{Err: errors.New("not attached")}, nil, true,
			`Warning FailedMapVolume MapVolume.WaitForAttach failed for volume "pvc-1" : not attached`},
		{"block volume node affinity", &plugins.Spec{Name: "v", PV: pinned, Block: true}, nil, nil, true,
			`Warning FailedMount MapVolume.NodeAffinity check failed for volume "pvc-1" : no matching NodeSelectorTerms`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fp := &fakePlugin{setUpErr: tc.setUpErr, mountDevErr: tc.mountErr}
			var pl plugins.Plugin = struct{ plugins.Plugin }{fp}
			switch {
			case tc.spec.Block:
				pl = blockDevPlugin{devPathPlugin{fp, root}}
			case tc.attached:
				pl = devPathPlugin{fp, root}
			}
			desired := cache.NewDesired()
			rec := record.NewFakeRecorder(10)
			r, err := New(Config{RootDir: root, Ops: fakehost.New(), Desired: desired, Actual: cache.NewActual(),
				Store: reconstruction.Store{Root: root}, Recorder: rec,
				Attached:   func() []corev1.AttachedVolume { return []corev1.AttachedVolume{{Name: "fake/v"}} },
				Ready:      func() bool { return true },
				NodeLabels: func(context.Context) (map[string]string, error) { return map[string]string{"k": "here"}, nil }})
			if err != nil {
				t.Fatal(err)
			}
			desired.AddPodVolume(cache.VolumeToMount{VolumeName: "fake/v", OuterName: "v", Plugin: pl, Spec: tc.spec,
				Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}}, Attachable: tc.attached})
			desired.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"fake/v"})
			r.Reconcile(context.Background())
			r.Wait()
			select {
			case ev := <-rec.Events:
				if ev != tc.wantEvent {
					t.Fatalf("event %q, want %q", ev, tc.wantEvent)
				}
			default:
				t.Fatalf("no event; calls %q", fp.Calls())
			}
		})
	}
}
