package volumebinding

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// fakeWorld is findPodVolumes' world from plain objects, through the
// same volume cache the plugin uses.
type fakeWorld struct {
	vols    *volumeCache
	classes map[string]*storagev1.StorageClass
	drivers map[string]*storagev1.CSIDriver
	caps    []*storagev1.CSIStorageCapacity
}

func newFakeWorld(pvs []*v1.PersistentVolume, classes []*storagev1.StorageClass, drivers []*storagev1.CSIDriver, caps []*storagev1.CSIStorageCapacity) *fakeWorld {
	w := &fakeWorld{vols: newVolumeCache(), classes: map[string]*storagev1.StorageClass{}, drivers: map[string]*storagev1.CSIDriver{}, caps: caps}
	for _, pv := range pvs {
		w.vols.update(pv)
	}
	for _, c := range classes {
		w.classes[c.Name] = c
	}
	for _, d := range drivers {
		w.drivers[d.Name] = d
	}
	return w
}

func (w *fakeWorld) volume(name string) *v1.PersistentVolume { return w.vols.get(name) }
func (w *fakeWorld) prebound(c *v1.PersistentVolumeClaim) []*v1.PersistentVolume {
	return w.vols.preboundTo(c)
}
func (w *fakeWorld) best(c *v1.PersistentVolumeClaim, n *v1.Node, taken func(*v1.PersistentVolume) bool) (*v1.PersistentVolume, error) {
	return w.vols.best(c, n, taken)
}
func (w *fakeWorld) class(name string) (*storagev1.StorageClass, error) {
	if c, ok := w.classes[name]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("storageclass %q not found", name)
}
func (w *fakeWorld) driver(name string) *storagev1.CSIDriver { return w.drivers[name] }
func (w *fakeWorld) capacities(class string) []*storagev1.CSIStorageCapacity {
	var out []*storagev1.CSIStorageCapacity
	for _, c := range w.caps {
		if c.StorageClassName == class {
			out = append(out, c)
		}
	}
	return out
}

const hostname = "kubernetes.io/hostname"

func node(name string, kv ...string) *v1.Node {
	l := map[string]string{hostname: name}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

type pvOpt func(*v1.PersistentVolume)

// localPV is an Available volume of class "local" pinned to a node.
func localPV(name, size, nodeName string, opts ...pvOpt) *v1.PersistentVolume {
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: v1.PersistentVolumeSpec{
			Capacity:         v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)},
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			StorageClassName: "local",
			VolumeMode:       ptr.To(v1.PersistentVolumeFilesystem),
			PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: "/mnt/" + name},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: hostname, Operator: v1.NodeSelectorOpIn, Values: []string{nodeName}}},
			}}}},
		},
		Status: v1.PersistentVolumeStatus{Phase: v1.VolumeAvailable},
	}
	for _, o := range opts {
		o(pv)
	}
	return pv
}

func claimRef(ns, name, uid string) pvOpt {
	return func(pv *v1.PersistentVolume) {
		pv.Spec.ClaimRef = &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name, UID: types.UID(uid)}
	}
}

func phase(p v1.PersistentVolumePhase) pvOpt {
	return func(pv *v1.PersistentVolume) { pv.Status.Phase = p }
}

type claimOpt func(*v1.PersistentVolumeClaim)

func claim(name, size, class string, opts ...claimOpt) *v1.PersistentVolumeClaim {
	c := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}},
			StorageClassName: ptr.To(class),
			VolumeMode:       ptr.To(v1.PersistentVolumeFilesystem),
		},
		Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func boundTo(pv string) claimOpt {
	return func(c *v1.PersistentVolumeClaim) {
		c.Spec.VolumeName = pv
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, "pv.kubernetes.io/bind-completed", "yes")
		c.Status.Phase = v1.ClaimBound
	}
}

func selected(n string) claimOpt {
	return func(c *v1.PersistentVolumeClaim) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, "volume.kubernetes.io/selected-node", n)
	}
}

func class(name, provisioner string, topo ...string) *storagev1.StorageClass {
	c := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       provisioner,
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if len(topo) > 0 {
		c.AllowedTopologies = []v1.TopologySelectorTerm{{MatchLabelExpressions: []v1.TopologySelectorLabelRequirement{{Key: topo[0], Values: topo[1:]}}}}
	}
	return c
}

func capacity(class, size, maxSize string, nodeKV ...string) *storagev1.CSIStorageCapacity {
	c := &storagev1.CSIStorageCapacity{
		ObjectMeta:       metav1.ObjectMeta{Name: "cap-" + class + "-" + size, Namespace: "kube-system"},
		StorageClassName: class,
	}
	if size != "" {
		c.Capacity = ptr.To(resource.MustParse(size))
	}
	if maxSize != "" {
		c.MaximumVolumeSize = ptr.To(resource.MustParse(maxSize))
	}
	if len(nodeKV) > 0 {
		c.NodeTopology = &metav1.LabelSelector{MatchLabels: map[string]string{nodeKV[0]: nodeKV[1]}}
	}
	return c
}

func csiDriver(name string, capacity bool) *storagev1.CSIDriver {
	return &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.CSIDriverSpec{StorageCapacity: ptr.To(capacity)}}
}
