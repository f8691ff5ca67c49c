package kube

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"volplane/internal/csi/client"
)

func TestNames(t *testing.T) {
	if got := UniqueVolumeName("d.example.com", "vol-1"); got != "kubernetes.io/csi/d.example.com^vol-1" {
		t.Errorf("unique name %s", got)
	}
	want := fmt.Sprintf("csi-%x", sha256.Sum256([]byte("vol-1d.example.comnode-a")))
	if got := AttachmentName("vol-1", "d.example.com", "node-a"); got != want {
		t.Errorf("attachment name %s, want %s", got, want)
	}
	for driver, want := range map[string]string{
		"example.com/driver":    "external-attacher/example-com-driver",
		"local.csi.volplane.io": "external-attacher/local-csi-volplane-io",
		"Drv_1-x":               "external-attacher/Drv-1-x",
		"d.":                    "external-attacher/d-X",
	} {
		if got := AttacherFinalizer(driver); got != want {
			t.Errorf("finalizer of %q: %s, want upstream's %s", driver, got, want)
		}
	}
	if got := LegacyAttacherFinalizer("example.com/driver"); got != "external-attacher/example.com-driver" {
		t.Errorf("legacy finalizer %s", got)
	}
}

func TestAccessModes(t *testing.T) {
	for _, tc := range []struct {
		modes []v1.PersistentVolumeAccessMode
		snmw  bool
		want  []client.AccessMode
	}{
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, false, []client.AccessMode{client.SingleNodeWriter}},
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, true, []client.AccessMode{client.SingleNodeMultiWriter}},
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteOncePod}, true, []client.AccessMode{client.SingleNodeSingleWriter}},
		{[]v1.PersistentVolumeAccessMode{v1.ReadWriteOncePod}, false, []client.AccessMode{client.SingleNodeWriter}},
		{[]v1.PersistentVolumeAccessMode{v1.ReadOnlyMany, v1.ReadWriteMany}, false, []client.AccessMode{client.MultiNodeReaderOnly, client.MultiNodeMultiWriter}},
	} {
		got, err := AccessModes(tc.modes, tc.snmw)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v snmw=%v: %v, %v; want %v", tc.modes, tc.snmw, got, err, tc.want)
		}
	}
	if _, err := AccessModes([]v1.PersistentVolumeAccessMode{"Nope"}, false); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestCapabilitiesAndPublish(t *testing.T) {
	caps, err := Capabilities([]v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, ptr.To(v1.PersistentVolumeBlock), "xfs", []string{"ro"}, false)
	if err != nil || len(caps) != 1 || !caps[0].Block || caps[0].FSType != "" || caps[0].MountFlags != nil {
		t.Errorf("block capability %+v, %v", caps, err)
	}
	spec := &v1.PersistentVolumeSpec{
		AccessModes:            []v1.PersistentVolumeAccessMode{v1.ReadOnlyMany, v1.ReadWriteOnce},
		MountOptions:           []string{"noatime"},
		PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{FSType: "ext4"}},
	}
	c, err := PublishCapability(spec, false)
	want := client.Capability{AccessMode: client.SingleNodeWriter, FSType: "ext4", MountFlags: []string{"noatime"}}
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("publish capability %+v, %v; want %+v", c, err, want)
	}
}

func TestParametersAndAffinity(t *testing.T) {
	got := DriverParameters(map[string]string{"type": "dir", ParamFSType: "xfs", "csi.storage.k8s.io/provisioner-secret-name": "s"})
	if !reflect.DeepEqual(got, map[string]string{"type": "dir"}) {
		t.Errorf("parameters %v", got)
	}
	a := NodeAffinity([]client.Topology{{"zone": "a", "rack": "1"}, {}})
	terms := a.Required.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 2 || terms[0].MatchExpressions[0].Key != "rack" ||
		terms[0].MatchExpressions[1].Values[0] != "a" {
		t.Errorf("affinity %+v", terms)
	}
	if NodeAffinity(nil) != nil {
		t.Error("affinity without topology")
	}
}
