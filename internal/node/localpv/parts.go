package localpv

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"volplane/internal/hostops"
)

// HostnameLabel is the node label local PVs are pinned to.
const HostnameLabel = corev1.LabelHostname

// ProvisionerName is what the pv.kubernetes.io/provisioned-by annotation
// of this node's PVs says, as upstream's provisioner writes it. It does
// not start with "kubernetes.io/", so the PV controller leaves a released
// PV to it instead of marking it Failed.
func ProvisionerName(node string, uid types.UID) string {
	return fmt.Sprintf("local-volume-provisioner-%s-%s", node, uid)
}

// PVName is the name of the PV of the mount point base (its name in the
// discovery dir) on node for class: upstream's, "local-pv-" and the hex
// FNV-1a 32-bit hash of the three, so it is the same across restarts.
func PVName(base, node, class string) string {
	h := fnv.New32a()
	h.Write([]byte(base))
	h.Write([]byte(node))
	h.Write([]byte(class))
	return fmt.Sprintf("local-pv-%x", h.Sum32())
}

// Volume is a mount point found directly under the discovery dir.
type Volume struct {
	// Path is the mount point.
	Path string
	// Capacity is the size of its filesystem in bytes.
	Capacity int64
}

// Owner names who the PVs are for: the node, the provisioner's
// annotation value, the class and its reclaim policy.
type Owner struct {
	Node          string
	Provisioner   string
	Class         string
	ReclaimPolicy corev1.PersistentVolumeReclaimPolicy
}

// roundCapacity rounds bytes down to whole GiB when that leaves at least
// ten of them, else to whole MiB likewise, as upstream's provisioner
// does, so sizes read well and a filesystem's overhead does not show.
func roundCapacity(bytes int64) int64 {
	for _, unit := range []int64{1 << 30, 1 << 20} {
		if n := bytes / unit; n >= 10 {
			return n * unit
		}
	}
	return bytes
}

// NewPV is the PV of volume v: a local PV pinned to the node by
// kubernetes.io/hostname, Filesystem, ReadWriteOnce, annotated with the
// provisioner's name.
func NewPV(o Owner, v Volume) *corev1.PersistentVolume {
	fs := corev1.PersistentVolumeFilesystem
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        PVName(filepath.Base(v.Path), o.Node, o.Class),
			Annotations: map[string]string{storagehelpers.AnnDynamicallyProvisioned: o.Provisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(roundCapacity(v.Capacity), resource.BinarySI),
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: v.Path},
			},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: o.ReclaimPolicy,
			StorageClassName:              o.Class,
			VolumeMode:                    &fs,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: HostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{o.Node},
				}}}},
			}},
		},
	}
}

// mountsUnder are the mount points directly under dir (a clean absolute
// path), each once.
func mountsUnder(dir string, table []hostops.MountPoint) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range table {
		if filepath.Dir(m.Path) != dir || m.Path == dir || seen[m.Path] {
			continue
		}
		seen[m.Path] = true
		out = append(out, m.Path)
	}
	sort.Strings(out)
	return out
}

// owned reports whether pv is one of o's: a local PV whose
// provisioned-by annotation names o's provisioner.
func owned(o Owner, pv *corev1.PersistentVolume) bool {
	return pv.Spec.Local != nil && pv.Annotations[storagehelpers.AnnDynamicallyProvisioned] == o.Provisioner
}

// Plan is what one discovery pass does.
type Plan struct {
	// Create are the PVs of mount points that have none.
	Create []*corev1.PersistentVolume
	// Release are the Released PVs whose mount point is there: scrubbed,
	// then deleted.
	Release []*corev1.PersistentVolume
	// Delete are the unbound PVs whose mount point is gone.
	Delete []*corev1.PersistentVolume
	// Missing are the PVs whose mount point is gone but that are bound
	// (or released, so cannot be scrubbed): reported, never deleted.
	Missing []*corev1.PersistentVolume
}

// plan compares the mount points found with the PVs that exist. pvs are
// all PVs (a PV of another owner with a wanted name blocks its creation);
// volumes are the mount points under dir with their capacity. A PV being
// deleted is left alone.
//
//	mount point   PV (owned)               action
//	-----------   ----------------------   --------------------------------
//	there         none (no PV of name)     Create
//	there         Released                 Release: scrub, delete
//	there         other phase              nothing
//	gone          no claimRef              Delete
//	gone          claimRef set (Bound,     Missing: warning event
//	              Released, pre-bound)
func plan(o Owner, dir string, volumes []Volume, pvs []*corev1.PersistentVolume) Plan {
	var p Plan
	byName := map[string]*corev1.PersistentVolume{}
	for _, pv := range pvs {
		byName[pv.Name] = pv
	}
	present := map[string]bool{}
	for _, v := range volumes {
		present[v.Path] = true
		if _, ok := byName[PVName(filepath.Base(v.Path), o.Node, o.Class)]; !ok {
			p.Create = append(p.Create, NewPV(o, v))
		}
	}
	for _, pv := range pvs {
		if !owned(o, pv) || pv.DeletionTimestamp != nil || filepath.Dir(pv.Spec.Local.Path) != dir {
			continue
		}
		switch {
		case present[pv.Spec.Local.Path]:
			if pv.Status.Phase == corev1.VolumeReleased && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
				p.Release = append(p.Release, pv)
			}
		case pv.Spec.ClaimRef == nil:
			p.Delete = append(p.Delete, pv)
		default:
			p.Missing = append(p.Missing, pv)
		}
	}
	sortPVs(p.Release)
	sortPVs(p.Delete)
	sortPVs(p.Missing)
	return p
}

func sortPVs(pvs []*corev1.PersistentVolume) {
	sort.Slice(pvs, func(i, j int) bool { return pvs[i].Name < pvs[j].Name })
}

// mountedElsewhere reports whether the filesystem mounted at path is
// mounted somewhere else too, at or below its root: a pod's bind mount
// of the volume that is not torn down yet. table is the mount table.
func mountedElsewhere(path string, table []hostops.MountPoint) bool {
	var self *hostops.MountPoint
	for i := range table {
		if table[i].Path == path {
			self = &table[i] // the last one is the one on top
		}
	}
	if self == nil {
		return false
	}
	for _, m := range table {
		if m.Path == path || m.Major != self.Major || m.Minor != self.Minor {
			continue
		}
		if m.Root == self.Root || self.Root == "/" || len(m.Root) > len(self.Root) && m.Root[:len(self.Root)+1] == self.Root+"/" {
			return true
		}
	}
	return false
}

// podUsesClaim reports whether pod, not yet finished, names the claim.
func podUsesClaim(pod *corev1.Pod, claim string) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

// inUseByNode reports whether the node lists pv's volume in
// status.volumesInUse.
func inUseByNode(node *corev1.Node, pv string) bool {
	want := corev1.UniqueVolumeName(localPluginName + "/" + pv)
	for _, v := range node.Status.VolumesInUse {
		if v == want {
			return true
		}
	}
	return false
}

// localPluginName is the local volume plugin's name, the prefix of its
// unique volume names.
const localPluginName = "kubernetes.io/local-volume"
