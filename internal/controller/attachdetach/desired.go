package attachdetach

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"volplane/internal/controller/podindex"
	"volplane/internal/csi/kube"
)

// AnnControllerManaged on a Node says the attach/detach controller, not
// the node, attaches its volumes.
const AnnControllerManaged = "volumes.kubernetes.io/controller-managed-attach-detach"

// volumeToAttach is one volume the pods on one node need attached.
type volumeToAttach struct {
	name           v1.UniqueVolumeName
	pvName         string
	driver, handle string
	// multiAttach: the PV's access modes let it be attached to several
	// nodes (ReadWriteMany, ReadOnlyMany, or none given).
	multiAttach bool
	pods        []*v1.Pod
}

// desiredState is node -> volume -> what needs it.
type desiredState map[string]map[v1.UniqueVolumeName]*volumeToAttach

// populate computes the desired state of the world from the caches: the
// CSI volumes (through bound claims) of every pod that is scheduled to a
// node with controller-managed attach/detach and is not terminated,
// except those of drivers whose CSIDriver says attachRequired: false.
func (c *Controller) populate() (desiredState, map[string]*v1.Node, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	managed := map[string]*v1.Node{}
	for _, n := range nodes {
		if n.Annotations[AnnControllerManaged] == "true" {
			managed[n.Name] = n
		}
	}
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	desired := desiredState{}
	for _, pod := range pods {
		if managed[pod.Spec.NodeName] == nil || podindex.IsTerminated(pod) {
			continue
		}
		for i := range pod.Spec.Volumes {
			v := c.podVolume(pod, &pod.Spec.Volumes[i])
			if v == nil {
				continue
			}
			node := desired[pod.Spec.NodeName]
			if node == nil {
				node = map[v1.UniqueVolumeName]*volumeToAttach{}
				desired[pod.Spec.NodeName] = node
			}
			if have := node[v.name]; have != nil {
				have.pods = append(have.pods, pod)
				continue
			}
			v.pods = []*v1.Pod{pod}
			node[v.name] = v
		}
	}
	return desired, managed, nil
}

// podVolume is the attachable CSI volume behind a pod volume, nil for
// anything else or a claim not bound yet.
func (c *Controller) podVolume(pod *v1.Pod, vol *v1.Volume) *volumeToAttach {
	claimName := podindex.ClaimName(pod, vol)
	if claimName == "" {
		return nil
	}
	claim, err := c.claims.PersistentVolumeClaims(pod.Namespace).Get(claimName)
	if err != nil || claim.Spec.VolumeName == "" || claim.Status.Phase != v1.ClaimBound {
		return nil
	}
	pv, err := c.volumes.Get(claim.Spec.VolumeName)
	if err != nil || pv.Spec.CSI == nil {
		return nil
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != claim.UID {
		return nil
	}
	if !c.attachRequired(pv.Spec.CSI.Driver) {
		return nil
	}
	modes := pv.Spec.AccessModes
	return &volumeToAttach{
		name:        kube.UniqueVolumeName(pv.Spec.CSI.Driver, pv.Spec.CSI.VolumeHandle),
		pvName:      pv.Name,
		driver:      pv.Spec.CSI.Driver,
		handle:      pv.Spec.CSI.VolumeHandle,
		multiAttach: len(modes) == 0 || slices.Contains(modes, v1.ReadWriteMany) || slices.Contains(modes, v1.ReadOnlyMany),
	}
}

// attachRequired: a driver without a CSIDriver object needs attaching, as
// upstream assumes.
func (c *Controller) attachRequired(driver string) bool {
	d, err := c.drivers.Get(driver)
	if err != nil || d.Spec.AttachRequired == nil {
		return true
	}
	return *d.Spec.AttachRequired
}
