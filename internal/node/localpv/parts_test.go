package localpv

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/hostops"
)

func TestPVName(t *testing.T) {
	tests := []struct {
		base, node, class, want string
	}{
		// FNV-1a 32 of "vol1"+"node-a"+"local-storage", worked out by hand
		// from the reference algorithm below.
		{"vol1", "node-a", "local-storage", "local-pv-" + fnvHex("vol1node-alocal-storage")},
		{"", "", "", "local-pv-811c9dc5"}, // the FNV-1a offset basis
		{"a", "", "", "local-pv-e40c292c"},
	}
	for _, tt := range tests {
		if got := PVName(tt.base, tt.node, tt.class); got != tt.want {
			t.Errorf("PVName(%q, %q, %q) = %s, want %s", tt.base, tt.node, tt.class, got, tt.want)
		}
	}
	if PVName("vol1", "node-a", "c") == PVName("vol1", "node-b", "c") {
		t.Error("two nodes' volumes of one name share a PV name")
	}
}

// fnvHex is FNV-1a 32 written out, to check PVName against.
func fnvHex(s string) string {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	const digits = "0123456789abcdef"
	out := []byte{}
	for shift := 28; shift >= 0; shift -= 4 {
		d := (h >> shift) & 0xf
		if len(out) == 0 && d == 0 && shift > 0 {
			continue
		}
		out = append(out, digits[d])
	}
	return string(out)
}

func TestRoundCapacity(t *testing.T) {
	tests := []struct{ in, want int64 }{
		{0, 0},
		{5 << 20, 5 << 20},
		{10<<20 + 12345, 10 << 20},
		{(9 << 30) + (500 << 20), (9 << 30) + (500 << 20)},
		{(10 << 30) + 1, 10 << 30},
		{1000, 1000},
	}
	for _, tt := range tests {
		if got := roundCapacity(tt.in); got != tt.want {
			t.Errorf("roundCapacity(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

var owner = Owner{Node: "n1", Provisioner: "local-volume-provisioner-n1-uid1", Class: "local-storage", ReclaimPolicy: corev1.PersistentVolumeReclaimDelete}

func TestNewPV(t *testing.T) {
	pv := NewPV(owner, Volume{Path: "/mnt/disks/vol1", Capacity: 64 << 20})
	if pv.Name != PVName("vol1", "n1", "local-storage") {
		t.Errorf("name %s", pv.Name)
	}
	if pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] != owner.Provisioner {
		t.Errorf("annotations %v", pv.Annotations)
	}
	s := pv.Spec
	if s.Local == nil || s.Local.Path != "/mnt/disks/vol1" {
		t.Errorf("local %v", s.Local)
	}
	if q := s.Capacity[corev1.ResourceStorage]; q.Value() != 64<<20 || q.String() != "64Mi" {
		t.Errorf("capacity %s", q.String())
	}
	if s.StorageClassName != "local-storage" || s.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		*s.VolumeMode != corev1.PersistentVolumeFilesystem || !reflect.DeepEqual(s.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("spec %+v", s)
	}
	want := []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}}
	if !reflect.DeepEqual(s.NodeAffinity.Required.NodeSelectorTerms, want) {
		t.Errorf("node affinity %+v", s.NodeAffinity)
	}
}

func TestMountsUnder(t *testing.T) {
	table := []hostops.MountPoint{
		{Path: "/"}, {Path: "/mnt/disks"}, {Path: "/mnt/disks/b"}, {Path: "/mnt/disks/a"},
		{Path: "/mnt/disks/a"}, {Path: "/mnt/disks/a/deeper"}, {Path: "/mnt/disksX/c"}, {Path: "/mnt/other"},
	}
	got := mountsUnder("/mnt/disks", table)
	if want := []string{"/mnt/disks/a", "/mnt/disks/b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func pvOf(path string, mutate func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
	pv := NewPV(owner, Volume{Path: path, Capacity: 1 << 30})
	pv.UID = types.UID("uid-" + pv.Name)
	if mutate != nil {
		mutate(pv)
	}
	return pv
}

func claimed(phase corev1.PersistentVolumePhase) func(*corev1.PersistentVolume) {
	return func(pv *corev1.PersistentVolume) {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "c", UID: "cu"}
		pv.Status.Phase = phase
	}
}

func names(pvs []*corev1.PersistentVolume) []string {
	var out []string
	for _, pv := range pvs {
		out = append(out, pv.Spec.Local.Path)
	}
	return out
}

func TestPlan(t *testing.T) {
	dir := "/d"
	vol := func(p string) Volume { return Volume{Path: p, Capacity: 1 << 30} }
	now := metav1.Now()
	tests := []struct {
		name                          string
		volumes                       []Volume
		pvs                           []*corev1.PersistentVolume
		create, release, del, missing []string
	}{
		{name: "new mounts", volumes: []Volume{vol("/d/a"), vol("/d/b")}, create: []string{"/d/a", "/d/b"}},
		{name: "existing PV of any phase: nothing", volumes: []Volume{vol("/d/a"), vol("/d/b")},
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", nil), pvOf("/d/b", claimed(corev1.VolumeBound))}},
		{name: "a PV of another owner with the name blocks creation", volumes: []Volume{vol("/d/a")},
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", func(pv *corev1.PersistentVolume) { pv.Annotations = nil })}},
		{name: "released with its mount: release", volumes: []Volume{vol("/d/a")},
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", claimed(corev1.VolumeReleased))}, release: []string{"/d/a"}},
		{name: "released, Retain: kept", volumes: []Volume{vol("/d/a")},
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", func(pv *corev1.PersistentVolume) {
				claimed(corev1.VolumeReleased)(pv)
				pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
			})}},
		{name: "gone, available: delete", pvs: []*corev1.PersistentVolume{pvOf("/d/a", func(pv *corev1.PersistentVolume) { pv.Status.Phase = corev1.VolumeAvailable })},
			del: []string{"/d/a"}},
		{name: "gone, bound or pre-bound or released: missing",
			pvs:     []*corev1.PersistentVolume{pvOf("/d/a", claimed(corev1.VolumeBound)), pvOf("/d/b", claimed(corev1.VolumeAvailable)), pvOf("/d/c", claimed(corev1.VolumeReleased))},
			missing: []string{"/d/a", "/d/b", "/d/c"}},
		{name: "being deleted: left alone", volumes: []Volume{vol("/d/a")},
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", func(pv *corev1.PersistentVolume) { claimed(corev1.VolumeReleased)(pv); pv.DeletionTimestamp = &now }),
				pvOf("/d/b", func(pv *corev1.PersistentVolume) { pv.DeletionTimestamp = &now })}},
		{name: "another owner's PVs are not deleted",
			pvs: []*corev1.PersistentVolume{pvOf("/d/a", func(pv *corev1.PersistentVolume) { pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] = "other" })}},
		{name: "PVs outside the dir are not ours to judge",
			pvs: []*corev1.PersistentVolume{pvOf("/elsewhere/a", nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(owner, dir, tt.volumes, tt.pvs)
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"create", names(p.Create), tt.create}, {"release", names(p.Release), tt.release}, {"delete", names(p.Delete), tt.del}, {"missing", names(p.Missing), tt.missing}} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestMountedElsewhere(t *testing.T) {
	tests := []struct {
		name  string
		table []hostops.MountPoint
		want  bool
	}{
		{"alone", []hostops.MountPoint{{Path: "/", Major: 8, Minor: 1, Root: "/"}, {Path: "/d/a", Major: 0, Minor: 50, Root: "/"}}, false},
		{"a pod's bind mount", []hostops.MountPoint{{Path: "/d/a", Major: 0, Minor: 50, Root: "/"}, {Path: "/k/pods/u/volumes/x", Major: 0, Minor: 50, Root: "/"}}, true},
		{"a bind mount of a subdir", []hostops.MountPoint{{Path: "/d/a", Major: 0, Minor: 50, Root: "/"}, {Path: "/x", Major: 0, Minor: 50, Root: "/sub"}}, true},
		{"bind-mounted volume, the root fs elsewhere", []hostops.MountPoint{{Path: "/", Major: 8, Minor: 1, Root: "/"}, {Path: "/d/a", Major: 8, Minor: 1, Root: "/srv/a"}}, false},
		{"bind-mounted volume, used by a pod", []hostops.MountPoint{{Path: "/d/a", Major: 8, Minor: 1, Root: "/srv/a"}, {Path: "/p", Major: 8, Minor: 1, Root: "/srv/a/x"}}, true},
		{"sibling root of a common prefix", []hostops.MountPoint{{Path: "/d/a", Major: 8, Minor: 1, Root: "/srv/a"}, {Path: "/p", Major: 8, Minor: 1, Root: "/srv/ab"}}, false},
		{"not mounted", []hostops.MountPoint{{Path: "/p", Major: 0, Minor: 50, Root: "/"}}, false},
	}
	for _, tt := range tests {
		if got := mountedElsewhere("/d/a", tt.table); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPodUsesClaim(t *testing.T) {
	pod := func(phase corev1.PodPhase, claim string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}}, Status: corev1.PodStatus{Phase: phase}}
	}
	tests := []struct {
		pod  *corev1.Pod
		want bool
	}{
		{pod(corev1.PodRunning, "c"), true},
		{pod(corev1.PodPending, "c"), true},
		{pod(corev1.PodRunning, "other"), false},
		{pod(corev1.PodSucceeded, "c"), false},
		{pod(corev1.PodFailed, "c"), false},
		{&corev1.Pod{}, false},
	}
	for i, tt := range tests {
		if got := podUsesClaim(tt.pod, "c"); got != tt.want {
			t.Errorf("%d: got %v, want %v", i, got, tt.want)
		}
	}
}

func TestInUseByNode(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{VolumesInUse: []corev1.UniqueVolumeName{"kubernetes.io/csi/x^y", "kubernetes.io/local-volume/local-pv-1"}}}
	if !inUseByNode(n, "local-pv-1") || inUseByNode(n, "local-pv-2") || inUseByNode(&corev1.Node{}, "local-pv-1") {
		t.Error("inUseByNode")
	}
}
