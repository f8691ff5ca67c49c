package nodevolumelimits

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"
)

// newTestPlugin is the plugin over informer stores holding objs.
func newTestPlugin(t *testing.T, objs ...runtime.Object) *Plugin {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	p, err := newPlugin(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *v1.PersistentVolumeClaim:
			err = f.Core().V1().PersistentVolumeClaims().Informer().GetStore().Add(o)
		case *v1.PersistentVolume:
			err = f.Core().V1().PersistentVolumes().Informer().GetStore().Add(o)
		case *storagev1.StorageClass:
			err = f.Storage().V1().StorageClasses().Informer().GetStore().Add(o)
		case *storagev1.CSINode:
			err = f.Storage().V1().CSINodes().Informer().GetStore().Add(o)
		case *storagev1.VolumeAttachment:
			err = f.Storage().V1().VolumeAttachments().Informer().GetStore().Add(o)
		default:
			t.Fatalf("object %T", o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestFilter: a node with a limit of 2 for the driver, one pod there
// with a bound CSI claim.
func TestFilter(t *testing.T) {
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: drv}
	limit2 := csiNode(map[string]*int32{drv: ptr.To[int32](2)})
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va"}, Spec: storagev1.VolumeAttachmentSpec{
		NodeName: "n1", Attacher: drv, Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-att")}}}
	ephemeralOf := func(pod *v1.Pod, vol string) *v1.PersistentVolumeClaim {
		c := pvc(pod.Name+"-"+vol, "")
		c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: ptr.To(true)}}
		return c
	}
	withEph := podOf("eph", ephemeralVol("scratch"))
	withEph.UID = "uid-eph"
	base := []runtime.Object{class, csiPV("pv-a", drv, "ha"), csiPV("pv-b", drv, "hb"), csiPV("pv-att", drv, "hatt"),
		pvc("a", "pv-a"), pvc("b", "pv-b"), pvc("new1", ""), pvc("new2", ""), pvc("att", "pv-att"),
		ephemeralOf(withEph, "scratch")}
	onNode := placedPod("holder", claimVol("a"))
	tests := []struct {
		name  string
		extra []runtime.Object
		pods  []*v1.Pod // on the node
		pod   *v1.Pod
		want  fwk.Code
	}{
		{"no CSINode: no limit", nil, []*v1.Pod{onNode}, podOf("p", claimVol("new1"), claimVol("new2")), fwk.Success},
		{"within the limit", []runtime.Object{limit2}, []*v1.Pod{onNode}, podOf("p", claimVol("new1")), fwk.Success},
		{"over the limit", []runtime.Object{limit2}, []*v1.Pod{onNode}, podOf("p", claimVol("new1"), claimVol("new2")), fwk.Unschedulable},
		{"shared claim is not new", []runtime.Object{limit2}, []*v1.Pod{onNode, placedPod("h2", claimVol("b"))}, podOf("p", claimVol("a")), fwk.Success},
		{"attachment counts", []runtime.Object{limit2, va}, []*v1.Pod{onNode}, podOf("p", claimVol("new1")), fwk.Unschedulable},
		{"attachment of a pod's volume counts once", []runtime.Object{limit2, va}, []*v1.Pod{placedPod("h", claimVol("att"))}, podOf("p", claimVol("new1")), fwk.Success},
		{"ephemeral volume counts", []runtime.Object{limit2}, []*v1.Pod{onNode, placedPod("h2", claimVol("b"))}, withEph, fwk.Unschedulable},
		{"inline CSI volume does not count", []runtime.Object{limit2}, []*v1.Pod{onNode, placedPod("h2", inlineVol())}, podOf("p", claimVol("new1")), fwk.Success},
		{"missing claim", []runtime.Object{limit2}, nil, podOf("p", claimVol("gone")), fwk.UnschedulableAndUnresolvable},
	}
	for _, tt := range tests {
		p := newTestPlugin(t, append(append([]runtime.Object{}, base...), tt.extra...)...)
		ni := framework.NewNodeInfo()
		ni.SetNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
		for _, pod := range tt.pods {
			ni.AddPod(pod)
		}
		st := p.Filter(context.Background(), nil, tt.pod, ni)
		if st.Code() != tt.want {
			t.Errorf("%s: Filter = %v, want %v", tt.name, st, tt.want)
			continue
		}
		if st.Code() == fwk.Unschedulable && st.Reasons()[0] != ReasonMaxVolumeCountExceeded {
			t.Errorf("%s: reasons %q", tt.name, st.Reasons())
		}
	}
}

func placedPod(name string, vols ...v1.Volume) *v1.Pod {
	p := podOf(name, vols...)
	p.Spec.NodeName = "n1"
	return p
}
