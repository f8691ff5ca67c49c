package nodevolumelimits

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"
)

const drv = "local.csi.volplane.io"

func csiNode(counts map[string]*int32) *storagev1.CSINode {
	n := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	for d, c := range counts {
		var a *storagev1.VolumeNodeResources
		if c != nil {
			a = &storagev1.VolumeNodeResources{Count: c}
		}
		n.Spec.Drivers = append(n.Spec.Drivers, storagev1.CSINodeDriver{Name: d, NodeID: "n1", Allocatable: a})
	}
	return n
}

func TestExceeds(t *testing.T) {
	lim := map[string]int64{drv: 2}
	tests := []struct {
		name                      string
		newVols, onNode, attached volumes
		limits                    map[string]int64
		want                      bool
	}{
		{"no limits", volumes{"a": drv}, volumes{"b": drv, "c": drv}, nil, nil, false},
		{"no new volumes", volumes{}, volumes{"b": drv, "c": drv, "d": drv}, nil, lim, false},
		{"within", volumes{"a": drv}, volumes{"b": drv}, nil, lim, false},
		{"over by pods", volumes{"a": drv}, volumes{"b": drv, "c": drv}, nil, lim, true},
		{"over by attachments", volumes{"a": drv}, volumes{"b": drv}, volumes{"c": drv}, lim, true},
		{"attachment of a pod's volume counts once", volumes{"a": drv}, volumes{"b": drv}, volumes{"b": drv}, lim, false},
		{"volume already on the node is not new", volumes{"b": drv}, volumes{"b": drv, "c": drv}, nil, lim, false},
		{"two new at once over", volumes{"a": drv, "x": drv}, volumes{"b": drv}, nil, lim, true},
		{"other driver without limit", volumes{"a": "other"}, volumes{"b": "other", "c": "other"}, nil, lim, false},
		{"other driver's volumes do not count", volumes{"a": drv}, volumes{"b": drv, "c": "other"}, nil, lim, false},
		{"limit zero", volumes{"a": drv}, nil, nil, map[string]int64{drv: 0}, true},
	}
	for _, tt := range tests {
		if got := exceeds(tt.newVols, tt.onNode, tt.attached, tt.limits); got != tt.want {
			t.Errorf("%s: exceeds = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNodeLimitsAndRaised(t *testing.T) {
	if got := nodeLimits(nil); len(got) != 0 {
		t.Errorf("nil CSINode: %v", got)
	}
	got := nodeLimits(csiNode(map[string]*int32{drv: ptr.To[int32](5), "nocount": nil}))
	if !reflect.DeepEqual(got, map[string]int64{drv: 5}) {
		t.Errorf("nodeLimits = %v", got)
	}
	tests := []struct {
		name     string
		old, cur map[string]*int32
		want     bool
	}{
		{"raised", map[string]*int32{drv: ptr.To[int32](2)}, map[string]*int32{drv: ptr.To[int32](3)}, true},
		{"lowered", map[string]*int32{drv: ptr.To[int32](3)}, map[string]*int32{drv: ptr.To[int32](2)}, false},
		{"same", map[string]*int32{drv: ptr.To[int32](3)}, map[string]*int32{drv: ptr.To[int32](3)}, false},
		{"new driver with count", nil, map[string]*int32{drv: ptr.To[int32](1)}, true},
		{"new driver without count", nil, map[string]*int32{drv: nil}, false},
	}
	for _, tt := range tests {
		if got := limitRaised(csiNode(tt.old), csiNode(tt.cur)); got != tt.want {
			t.Errorf("%s: limitRaised = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func csiPV(name, driver, handle string) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: handle}}}}
}

func localPV(name string) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: "/x"}}}}
}

func pvc(name, volume string) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: v1.PersistentVolumeClaimSpec{VolumeName: volume, StorageClassName: ptr.To("sc")}}
}

func TestClaimVolume(t *testing.T) {
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: drv}
	tests := []struct {
		name           string
		claim          *v1.PersistentVolumeClaim
		pv             *v1.PersistentVolume
		class          *storagev1.StorageClass
		driver, handle string
	}{
		{"bound CSI", pvc("c", "pv1"), csiPV("pv1", "d", "h1"), class, "d", "h1"},
		{"bound non-CSI", pvc("c", "pv1"), localPV("pv1"), class, "", ""},
		{"bound, PV unknown: by class", pvc("c", "pv1"), nil, class, drv, "p-ns/c"},
		{"unbound: by class", pvc("c", ""), nil, class, drv, "p-ns/c"},
		{"unbound, class unknown", pvc("c", ""), nil, nil, "", ""},
	}
	for _, tt := range tests {
		d, h := claimVolume(tt.claim, tt.pv, tt.class, "p")
		if d != tt.driver || h != tt.handle {
			t.Errorf("%s: claimVolume = %q %q, want %q %q", tt.name, d, h, tt.driver, tt.handle)
		}
	}
}

func TestAttachmentVolume(t *testing.T) {
	va := func(node, attacher string, pv *string) *storagev1.VolumeAttachment {
		return &storagev1.VolumeAttachment{Spec: storagev1.VolumeAttachmentSpec{NodeName: node, Attacher: attacher,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: pv}}}
	}
	tests := []struct {
		name   string
		va     *storagev1.VolumeAttachment
		pv     *v1.PersistentVolume
		want   string
		wantOK bool
	}{
		{"counted", va("n1", drv, ptr.To("pv1")), csiPV("pv1", drv, "h"), drv + "/h", true},
		{"other node", va("n2", drv, ptr.To("pv1")), csiPV("pv1", drv, "h"), "", false},
		{"no attacher", va("n1", "", ptr.To("pv1")), csiPV("pv1", drv, "h"), "", false},
		{"inline source", va("n1", drv, nil), csiPV("pv1", drv, "h"), "", false},
		{"PV unknown", va("n1", drv, ptr.To("pv1")), nil, "", false},
		{"PV not CSI", va("n1", drv, ptr.To("pv1")), localPV("pv1"), "", false},
	}
	for _, tt := range tests {
		name, d, ok := attachmentVolume(tt.va, "n1", tt.pv)
		if name != tt.want || ok != tt.wantOK || (ok && d != drv) {
			t.Errorf("%s: attachmentVolume = %q %q %v, want %q %v", tt.name, name, d, ok, tt.want, tt.wantOK)
		}
	}
}

func podOf(name string, vols ...v1.Volume) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: v1.PodSpec{Volumes: vols}}
}

func claimVol(claim string) v1.Volume {
	return v1.Volume{Name: "v-" + claim, VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

func ephemeralVol(name string) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}}
}

func inlineVol() v1.Volume {
	return v1.Volume{Name: "inline", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: drv}}}
}

func TestPodClaims(t *testing.T) {
	got := podClaims(podOf("web", claimVol("data"), ephemeralVol("scratch"), inlineVol(),
		v1.Volume{Name: "e", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}))
	want := []podClaim{{name: "data"}, {name: "web-scratch", ephemeral: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("podClaims = %+v, want %+v", got, want)
	}
	if countsVolumes(podOf("p", inlineVol())) {
		t.Error("a pod with only a CSI inline volume counts")
	}
}

func TestHints(t *testing.T) {
	me := podOf("me", claimVol("data"), ephemeralVol("scratch"))
	placed := func(p *v1.Pod) *v1.Pod { p.Spec.NodeName = "n1"; return p }
	nominated := func(p *v1.Pod) *v1.Pod { p.Status.NominatedNodeName = "n1"; return p }
	claimIn := func(ns, name string) *v1.PersistentVolumeClaim {
		c := pvc(name, "")
		c.Namespace = ns
		return c
	}
	tests := []struct {
		name     string
		hint     fwk.QueueingHintFn
		pod      *v1.Pod
		old, cur any
		want     fwk.QueueingHint
	}{
		{"placed pod with a claim deleted", hintPodDeleted, me, placed(podOf("x", claimVol("z"))), nil, fwk.Queue},
		{"nominated pod with an ephemeral volume deleted", hintPodDeleted, me, nominated(podOf("x", ephemeralVol("e"))), nil, fwk.Queue},
		{"unplaced pod deleted", hintPodDeleted, me, podOf("x", claimVol("z")), nil, fwk.QueueSkip},
		{"placed pod with only inline volumes deleted", hintPodDeleted, me, placed(podOf("x", inlineVol())), nil, fwk.QueueSkip},
		{"my claim created", hintClaimAdded, me, nil, claimIn("ns", "data"), fwk.Queue},
		{"my ephemeral claim created", hintClaimAdded, me, nil, claimIn("ns", "me-scratch"), fwk.Queue},
		{"other claim created", hintClaimAdded, me, nil, claimIn("ns", "other"), fwk.QueueSkip},
		{"my claim's name elsewhere", hintClaimAdded, me, nil, claimIn("x", "data"), fwk.QueueSkip},
		{"attachment deleted, pod with claims", hintAttachmentDeleted, me, &storagev1.VolumeAttachment{}, nil, fwk.Queue},
		{"attachment deleted, pod without", hintAttachmentDeleted, podOf("p", inlineVol()), &storagev1.VolumeAttachment{}, nil, fwk.QueueSkip},
		{"count raised", hintCSINodeUpdated, me, csiNode(map[string]*int32{drv: ptr.To[int32](1)}), csiNode(map[string]*int32{drv: ptr.To[int32](2)}), fwk.Queue},
		{"count lowered", hintCSINodeUpdated, me, csiNode(map[string]*int32{drv: ptr.To[int32](2)}), csiNode(map[string]*int32{drv: ptr.To[int32](1)}), fwk.QueueSkip},
	}
	for _, tt := range tests {
		got, err := tt.hint(klog.Background(), tt.pod, tt.old, tt.cur)
		if err != nil || got != tt.want {
			t.Errorf("%s: hint = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
