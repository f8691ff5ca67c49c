package populator

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/emptydir"
	"volplane/internal/node/plugins/hostpath"
	"volplane/internal/node/plugins/local"
	"volplane/internal/node/volumemanager/cache"
)

type pods struct {
	list       []*corev1.Pod
	terminated map[types.UID]bool
}

func (p *pods) Pods() []*corev1.Pod                     { return p.list }
func (p *pods) ContainersTerminated(uid types.UID) bool { return p.terminated[uid] }

func pod(vols ...corev1.Volume) *corev1.Pod {
	var mounts []corev1.VolumeMount
	for _, v := range vols {
		if v.Name != "unused" {
			mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: "/" + v.Name})
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid"},
		Spec:       corev1.PodSpec{Volumes: vols, Containers: []corev1.Container{{Name: "c", VolumeMounts: mounts}}},
	}
}

func claimVol(name, claim string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

func boundPair(claim string, mode corev1.PersistentVolumeMode, owner *corev1.Pod) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: "default", UID: "claim-uid"},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv1"},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if owner != nil {
		c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{VolumeMode: &mode, ClaimRef: &corev1.ObjectReference{UID: "claim-uid"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/data"}}},
	}
	return c, pv
}

func TestPopulate(t *testing.T) {
	ed, _ := emptydir.New(emptydir.Config{})
	ps := []plugins.Plugin{ed, hostpath.New(), local.New()}
	emptyDir := corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	ephemeralVol := corev1.Volume{Name: "eph", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}}
	owner := pod(ephemeralVol)
	pending, pendingPV := boundPair("data", corev1.PersistentVolumeFilesystem, nil)
	pending.Status.Phase = corev1.ClaimPending
	okClaim, okPV := boundPair("data", corev1.PersistentVolumeFilesystem, nil)
	blockClaim, blockPV := boundPair("data", corev1.PersistentVolumeBlock, nil)
	wrongClaim, wrongPV := boundPair("data", corev1.PersistentVolumeFilesystem, nil)
	wrongPV.Spec.ClaimRef.UID = "other"
	ephOwned, ephOwnedPV := boundPair("p-eph", corev1.PersistentVolumeFilesystem, owner)
	ephForeign, ephForeignPV := boundPair("p-eph", corev1.PersistentVolumeFilesystem, nil)

	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		objs       []runtime.Object
		terminated bool
		want       map[string]string // outer name -> unique name
		wantErr    string
	}{
		{name: "inline emptyDir", pod: pod(emptyDir), want: map[string]string{"scratch": "kubernetes.io/empty-dir/uid-scratch"}},
		{name: "a volume no container uses is ignored", pod: pod(corev1.Volume{Name: "unused", VolumeSource: emptyDir.VolumeSource}), want: map[string]string{}},
		{name: "terminated pod has no volumes", pod: pod(emptyDir), terminated: true, want: map[string]string{}},
		{name: "bound claim leads to its PV", pod: pod(claimVol("vol", "data")), objs: []runtime.Object{okClaim, okPV},
			want: map[string]string{"vol": "kubernetes.io/local-volume/pv1"}},
		{name: "missing claim", pod: pod(claimVol("vol", "data")),
			wantErr: `error processing PVC default/data: failed to fetch PVC from API server: persistentvolumeclaims "data" not found`},
		{name: "pending claim", pod: pod(claimVol("vol", "data")), objs: []runtime.Object{pending, pendingPV},
			wantErr: "error processing PVC default/data: PVC is not bound"},
		{name: "PV bound elsewhere", pod: pod(claimVol("vol", "data")), objs: []runtime.Object{wrongClaim, wrongPV},
			wantErr: "error processing PVC default/data: found PV object pv1 but its pv.Spec.ClaimRef.UID other does not point to claim.UID claim-uid"},
		{name: "block PV in volumeMounts", pod: pod(claimVol("vol", "data")), objs: []runtime.Object{blockClaim, blockPV},
			wantErr: "volume vol has volumeMode Block, but is specified in volumeMounts"},
		{name: "ephemeral claim owned by the pod", pod: owner, objs: []runtime.Object{ephOwned, ephOwnedPV},
			want: map[string]string{"eph": "kubernetes.io/local-volume/pv1"}},
		{name: "ephemeral claim not owned", pod: pod(ephemeralVol), objs: []runtime.Object{ephForeign, ephForeignPV},
			wantErr: "PVC default/p-eph was not created for pod default/p (pod is not owner)"},
		{name: "CSI inline waits for the CSI plugin", pod: pod(corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d"}}}),
			wantErr: "no volume plugin matched name: kubernetes.io/csi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desired := cache.NewDesired()
			p, err := New(Config{Pods: &pods{list: []*corev1.Pod{tc.pod}, terminated: map[types.UID]bool{"uid": tc.terminated}},
				Desired: desired, Client: fake.NewClientset(tc.objs...), Plugins: ps})
			if err != nil {
				t.Fatal(err)
			}
			p.Populate(context.Background())
			if !p.Ready() {
				t.Fatal("not ready after a pass")
			}
			got := map[string]string{}
			for outer, v := range desired.PodVolumes("uid") {
				got[outer] = v.VolumeName
			}
			errs := desired.PodErrors("uid")
			if tc.wantErr != "" {
				var all []string
				for _, e := range errs {
					all = append(all, e)
				}
				if len(all) != 1 || !strings.HasPrefix(all[0], tc.wantErr) {
					t.Fatalf("errors %v, want %q", all, tc.wantErr)
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("errors %v", errs)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("desired %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("desired %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestPodsSynced: nothing is removed, and Ready stays false, until the
// agent's pod list is complete.
func TestPodsSynced(t *testing.T) {
	desired := cache.NewDesired()
	ed, _ := emptydir.New(emptydir.Config{})
	p0 := pod(corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	desired.AddPodVolume(cache.VolumeToMount{VolumeName: "x", OuterName: "scratch", Pod: p0, Plugin: ed})
	synced := false
	p, err := New(Config{Pods: &pods{}, PodsSynced: func() bool { return synced }, Desired: desired,
		Client: fake.NewClientset(), Plugins: []plugins.Plugin{ed}})
	if err != nil {
		t.Fatal(err)
	}
	p.Populate(context.Background())
	if p.Ready() || !desired.HasPod("uid") {
		t.Fatal("acted before the pod list was synced")
	}
	synced = true
	p.Populate(context.Background())
	if !p.Ready() || desired.HasPod("uid") {
		t.Fatal("a pod the agent does not list kept its volumes")
	}
}
