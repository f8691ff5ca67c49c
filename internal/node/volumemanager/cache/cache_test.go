package cache

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/node/plugins"
)

func pod(uid types.UID) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestDesired(t *testing.T) {
	d := NewDesired()
	ch := d.Changed()
	d.SetPodError("a", "v1", "boom")
	if !closed(ch) {
		t.Fatal("Changed not closed by a change")
	}
	d.AddPodVolume(VolumeToMount{VolumeName: "shared", OuterName: "v1", Pod: pod("a"), Spec: &plugins.Spec{}})
	d.AddPodVolume(VolumeToMount{VolumeName: "shared", OuterName: "v", Pod: pod("b"), Spec: &plugins.Spec{}})
	d.AddPodVolume(VolumeToMount{VolumeName: "own-b", OuterName: "w", Pod: pod("b"), Spec: &plugins.Spec{}})
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"error cleared by add", len(d.PodErrors("a")), 0},
		{"a wants shared", d.Wants("shared", "a"), true},
		{"b's volumes", len(d.PodVolumes("b")), 2},
		{"pairs", len(d.VolumesToMount()), 3},
		{"order", d.VolumesToMount()[0].VolumeName + "/" + string(d.VolumesToMount()[0].Pod.UID), "own-b/b"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	d.DeletePod("a")
	if d.Wants("shared", "a") || !d.HasVolume("shared") {
		t.Fatal("DeletePod removed too much or too little")
	}
	d.DeletePod("b")
	if d.HasVolume("shared") || d.HasPod("b") {
		t.Fatal("DeletePod of the last pod left the volume")
	}
	d.SetPodError("b", "w", "still failing")
	if uids := d.PodUIDs(); len(uids) != 1 || uids[0] != "b" {
		t.Fatalf("PodUIDs = %v", uids)
	}
}

func TestActual(t *testing.T) {
	a := NewActual()
	a.MarkDeviceMounted("vol", nil, &plugins.Spec{}, "/global")
	a.MarkMounted(MountedVolume{VolumeName: "vol", OuterName: "data", PodUID: "a", Spec: &plugins.Spec{}})
	a.MarkMounted(MountedVolume{VolumeName: "vol", OuterName: "data", PodUID: "b", Spec: &plugins.Spec{}, Uncertain: true})
	if len(a.UnusedDevices()) != 0 {
		t.Fatal("device in use reported unused")
	}
	if m, ok := a.Mounted("vol", "b"); !ok || !m.Uncertain {
		t.Fatal("uncertain mount lost")
	}
	a.RequestRemount("a", func(MountedVolume) bool { return true })
	if m, _ := a.Mounted("vol", "a"); !m.RemountRequested {
		t.Fatal("remount not requested")
	}
	a.MarkMounted(MountedVolume{VolumeName: "other", OuterName: "cache", PodUID: "a", Spec: &plugins.Spec{}})
	if got := a.PodVolumes("a"); len(got) != 2 || got["data"].VolumeName != "vol" || got["cache"].VolumeName != "other" {
		t.Fatalf("PodVolumes(a) = %+v, want data and cache", got)
	}
	a.MarkUnmounted("other", "a")
	a.MarkUnmounted("vol", "a")
	if got := a.PodVolumes("a"); len(got) != 0 {
		t.Fatalf("PodVolumes(a) after its unmounts = %+v", got)
	}
	if got := a.PodVolumes("b"); len(got) != 1 || !got["data"].Uncertain {
		t.Fatalf("PodVolumes(b) = %+v", got)
	}
	a.MarkUnmounted("vol", "b")
	if d := a.UnusedDevices(); len(d) != 1 || d[0].MountPath != "/global" {
		t.Fatalf("UnusedDevices = %+v", d)
	}
	if len(a.VolumeNames()) != 1 {
		t.Fatal("volume forgotten while its device is mounted")
	}
	ch := a.Changed()
	a.MarkDeviceUnmounted("vol")
	if !closed(ch) || len(a.VolumeNames()) != 0 {
		t.Fatal("volume not forgotten after its device went")
	}
}

// TestReportDue: a pod's errors are reported at once, then at most once
// every interval, and at once again after the pod is forgotten.
func TestReportDue(t *testing.T) {
	d := NewDesired()
	t0 := time.Unix(1000, 0)
	every := 10 * time.Second
	steps := []struct {
		at     time.Duration
		forget bool
		want   time.Duration
	}{
		{at: 0, want: 0},
		{at: 3 * time.Second, want: 7 * time.Second},
		{at: 10 * time.Second, want: 0},
		{at: 11 * time.Second, want: 9 * time.Second},
		{at: 12 * time.Second, forget: true, want: 0},
	}
	for _, s := range steps {
		if s.forget {
			d.DeletePod("a")
		}
		if got := d.ReportDue("a", t0.Add(s.at), every); got != s.want {
			t.Fatalf("at %v: due in %v, want %v", s.at, got, s.want)
		}
	}
	if got := d.ReportDue("b", t0.Add(11*time.Second), every); got != 0 {
		t.Fatalf("another pod waits %v for its first report", got)
	}
}

// TestReportedInUse follows upstream's MarkVolumesReportedInUse: a mark
// is set for the wanted volumes a status write listed and cleared for
// those it did not, a name nobody wants is ignored (a volume added later
// waits for a write that lists it), another pod of a marked volume keeps
// the mark, and the mark goes with the last pod.
func TestReportedInUse(t *testing.T) {
	d := NewDesired()
	add := func(name string, uid types.UID) {
		d.AddPodVolume(VolumeToMount{VolumeName: name, OuterName: name, Pod: pod(uid), Spec: &plugins.Spec{}})
	}
	marked := func(name string, uid types.UID) bool {
		v, ok := d.PodVolumes(uid)[name]
		if !ok {
			t.Fatalf("pod %s has no volume %s", uid, name)
		}
		for _, w := range d.VolumesToMount() {
			if w.VolumeName == name && w.Pod.UID == uid && w.ReportedInUse != v.ReportedInUse {
				t.Fatalf("VolumesToMount and PodVolumes disagree on %s", name)
			}
		}
		return v.ReportedInUse
	}
	d.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"later"})
	add("x", "a")
	add("later", "a")
	if marked("x", "a") || marked("later", "a") {
		t.Fatal("a new volume is marked before a write lists it")
	}
	ch := d.Changed()
	d.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"x"})
	if !marked("x", "a") || marked("later", "a") {
		t.Fatal("marks after a write of [x] wrong")
	}
	if !closed(ch) {
		t.Fatal("a new mark does not wake the reconciler")
	}
	ch = d.Changed()
	d.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"x"})
	if closed(ch) {
		t.Fatal("the same marks again count as a change")
	}
	add("x", "b")
	if !marked("x", "b") {
		t.Fatal("a second pod of a marked volume lost the mark")
	}
	d.MarkVolumesReportedInUse([]corev1.UniqueVolumeName{"later"})
	if marked("x", "a") || !marked("later", "a") {
		t.Fatal("a write without x left x marked")
	}
	d.DeletePod("a")
	d.DeletePod("b")
	add("later", "c")
	if marked("later", "c") {
		t.Fatal("a volume wanted again after its last pod went kept its old mark")
	}
}
