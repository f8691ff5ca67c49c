package kube

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/csi/client"
)

// Names and annotations upstream's CSI components use.
const (
	// ParamPrefix marks StorageClass parameters meant for the CO, not
	// the driver; they are removed before CreateVolume.
	ParamPrefix = "csi.storage.k8s.io/"
	// ParamFSType is the filesystem of Filesystem-mode volumes.
	ParamFSType = ParamPrefix + "fstype"
	// UniqueVolumePrefix starts the unique name of a CSI volume in a
	// Node's status.volumesAttached and status.volumesInUse.
	UniqueVolumePrefix = "kubernetes.io/csi/"
	// AnnNodeID on a VolumeAttachment keeps the node ID the attacher
	// published to, so that a detach works after the CSINode is gone.
	AnnNodeID = "csi.alpha.kubernetes.io/node-id"
)

// UniqueVolumeName is the name the attach/detach controller and the node
// agent use for a CSI volume: kubernetes.io/csi/<driver>^<volumeHandle>.
func UniqueVolumeName(driver, handle string) v1.UniqueVolumeName {
	return v1.UniqueVolumeName(UniqueVolumePrefix + driver + "^" + handle)
}

// AttachmentName is the name of the VolumeAttachment of a volume on a
// node: csi-<sha256(volumeHandle + driver + node)>, as upstream names it.
func AttachmentName(handle, driver, node string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(handle+driver+node)))
}

// AttacherFinalizer is the external attacher's finalizer for driver, on
// VolumeAttachments and on the PVs they attach, named as upstream's
// external-attacher names it: every character of the driver's name but
// ASCII letters, digits and '-' becomes '-', and a name ending in '-'
// gets an 'X' (external-attacher/local-csi-volplane-io).
func AttacherFinalizer(driver string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, driver)
	if strings.HasSuffix(name, "-") {
		name += "X"
	}
	return "external-attacher/" + name
}

// LegacyAttacherFinalizer is the name volplane's attacher gave its
// finalizer before it took upstream's ('/' as '-', nothing else): the
// attacher still removes it, so that attachments and volumes of an older
// data directory are released.
func LegacyAttacherFinalizer(driver string) string {
	return "external-attacher/" + strings.ReplaceAll(driver, "/", "-")
}

// AccessModes maps Kubernetes access modes to CSI ones as upstream's
// sidecars do; singleNodeMultiWriter is the driver's
// SINGLE_NODE_MULTI_WRITER controller capability.
func AccessModes(modes []v1.PersistentVolumeAccessMode, singleNodeMultiWriter bool) ([]client.AccessMode, error) {
	var out []client.AccessMode
	for _, m := range modes {
		var am client.AccessMode
		switch m {
		case v1.ReadWriteOnce:
			am = client.SingleNodeWriter
			if singleNodeMultiWriter {
				am = client.SingleNodeMultiWriter
			}
		case v1.ReadWriteOncePod:
			am = client.SingleNodeWriter
			if singleNodeMultiWriter {
				am = client.SingleNodeSingleWriter
			}
		case v1.ReadOnlyMany:
			am = client.MultiNodeReaderOnly
		case v1.ReadWriteMany:
			am = client.MultiNodeMultiWriter
		default:
			return nil, fmt.Errorf("unknown access mode %q", m)
		}
		if !slices.Contains(out, am) {
			out = append(out, am)
		}
	}
	return out, nil
}

// Capabilities are the CSI capabilities of a volume of the given modes:
// one per access mode, block or mounted with fsType and mountFlags.
func Capabilities(modes []v1.PersistentVolumeAccessMode, volumeMode *v1.PersistentVolumeMode, fsType string, mountFlags []string, singleNodeMultiWriter bool) ([]client.Capability, error) {
	ams, err := AccessModes(modes, singleNodeMultiWriter)
	if err != nil {
		return nil, err
	}
	if len(ams) == 0 {
		return nil, fmt.Errorf("no access mode")
	}
	block := volumeMode != nil && *volumeMode == v1.PersistentVolumeBlock
	var out []client.Capability
	for _, am := range ams {
		c := client.Capability{AccessMode: am, Block: block}
		if !block {
			c.FSType, c.MountFlags = fsType, mountFlags
		}
		out = append(out, c)
	}
	return out, nil
}

// DriverParameters returns the class parameters without the CO's
// csi.storage.k8s.io/ keys.
func DriverParameters(params map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		if !strings.HasPrefix(k, ParamPrefix) {
			out[k] = v
		}
	}
	return out
}

// Secrets reads the secret ref names; nil ref is no secrets. The error
// names the secret but never its content.
func Secrets(ctx context.Context, cs kubernetes.Interface, ref *v1.SecretReference) (map[string]string, error) {
	if ref == nil {
		return nil, nil
	}
	s, err := cs.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("error getting secret %s in namespace %s: %w", ref.Name, ref.Namespace, err)
	}
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}

// NodeAffinity turns a volume's accessible topology into PV node
// affinity: one term per segment, each label In its value.
func NodeAffinity(topology []client.Topology) *v1.VolumeNodeAffinity {
	var terms []v1.NodeSelectorTerm
	for _, t := range topology {
		if len(t) == 0 {
			continue
		}
		var exprs []v1.NodeSelectorRequirement
		for _, k := range slices.Sorted(maps.Keys(t)) {
			exprs = append(exprs, v1.NodeSelectorRequirement{Key: k, Operator: v1.NodeSelectorOpIn, Values: []string{t[k]}})
		}
		terms = append(terms, v1.NodeSelectorTerm{MatchExpressions: exprs})
	}
	if len(terms) == 0 {
		return nil
	}
	return &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: terms}}
}

// CSINodeDriver returns driver's entry in a CSINode, nil when absent.
func CSINodeDriver(n *storagev1.CSINode, driver string) *storagev1.CSINodeDriver {
	if n == nil {
		return nil
	}
	for i := range n.Spec.Drivers {
		if n.Spec.Drivers[i].Name == driver {
			return &n.Spec.Drivers[i]
		}
	}
	return nil
}

// NodeSegment is the topology segment of a node for a driver: each of the
// driver's topology keys in the node's CSINode, with the node's label
// value. ok is false when the node lacks the driver or a label.
func NodeSegment(node *v1.Node, csiNode *storagev1.CSINode, driver string) (client.Topology, bool) {
	d := CSINodeDriver(csiNode, driver)
	if d == nil || node == nil {
		return nil, false
	}
	seg := client.Topology{}
	for _, k := range d.TopologyKeys {
		v, ok := node.Labels[k]
		if !ok {
			return nil, false
		}
		seg[k] = v
	}
	return seg, true
}

// SegmentKey is a stable string for a segment, for sorting and sets.
func SegmentKey(t client.Topology) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(t)) {
		b.WriteString(k + "=" + t[k] + ";")
	}
	return b.String()
}

// PublishCapability is the one capability ControllerPublish and the node
// calls get for a PV, chosen from its access modes as upstream does: a
// multi-writer mode wins, then single-node modes, then read-only many.
func PublishCapability(spec *v1.PersistentVolumeSpec, singleNodeMultiWriter bool) (client.Capability, error) {
	modes := spec.AccessModes
	var mode v1.PersistentVolumeAccessMode
	switch {
	case slices.Contains(modes, v1.ReadWriteMany):
		mode = v1.ReadWriteMany
	case slices.Contains(modes, v1.ReadWriteOncePod):
		mode = v1.ReadWriteOncePod
	case slices.Contains(modes, v1.ReadWriteOnce):
		mode = v1.ReadWriteOnce
	case slices.Contains(modes, v1.ReadOnlyMany):
		mode = v1.ReadOnlyMany
	default:
		return client.Capability{}, fmt.Errorf("volume has no access mode")
	}
	fsType := ""
	if spec.CSI != nil {
		fsType = spec.CSI.FSType
	}
	caps, err := Capabilities([]v1.PersistentVolumeAccessMode{mode}, spec.VolumeMode, fsType, spec.MountOptions, singleNodeMultiWriter)
	if err != nil {
		return client.Capability{}, err
	}
	return caps[0], nil
}
