package volumemanager

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Interface is what the node agent's pod workers call. See the package
// doc for the order of calls.
type Interface interface {
	// Run runs the populator and the reconciler until ctx is done.
	// Reconstruction happens before the first reconciliation.
	Run(ctx context.Context)
	// WaitForAttachAndMount blocks until every volume pod's containers
	// use is attached and mounted, or ctx is done. A pod whose volumes
	// cannot be mounted gets an error naming the volumes still missing,
	// in upstream's words.
	WaitForAttachAndMount(ctx context.Context, pod *corev1.Pod) error
	// PodVolumes returns the pod's mounted volumes by the pod's volume
	// name. A volume not (yet) mounted is absent.
	PodVolumes(podUID types.UID) map[string]MountedVolume
	// PrepareSubPath resolves req.SubPath inside the pod's volume
	// without following any symlink out of it, bind-mounts the result
	// under <root>/pods/<uid>/volume-subpaths/ and returns that path for
	// the runtime to bind-mount. Absolute paths and ".." components are
	// refused. Calling it again for the same request returns the same
	// path without mounting twice.
	PrepareSubPath(ctx context.Context, req SubPathRequest) (string, error)
	// WaitForUnmount blocks until every volume of pod is torn down, or
	// ctx is done. Call it only once the pod's containers are stopped.
	WaitForUnmount(ctx context.Context, pod *corev1.Pod) error
	// VolumesInUse lists the unique names of the attachable volumes
	// wanted, mounted or staged on this node, for the Node's
	// status.volumesInUse.
	VolumesInUse() []corev1.UniqueVolumeName
	// StatesSynced reports whether reconstruction has put what it found
	// on disk in the actual state. Until then VolumesInUse misses the
	// volumes mounted before a restart, and the agent leaves the Node's
	// volumesInUse as it is (upstream's ReconcilerStatesHasBeenSynced).
	StatesSynced() bool
	// VolumesInUseChanged returns a channel closed at the next change
	// of the wanted volumes, which may add to VolumesInUse (it may also
	// close when the list stays the same).
	VolumesInUseChanged() <-chan struct{}
	// MarkVolumesAsReportedInUse tells the manager which volumes the
	// last successful write of the Node's status listed in
	// status.volumesInUse (as the API returned it). An attachable volume
	// not yet mounted is staged and set up only once such a write has
	// listed it; a write that does not list a volume clears its mark.
	MarkVolumesAsReportedInUse(names []corev1.UniqueVolumeName)
}

// MountedVolume is a volume of a pod as the runtime sees it.
type MountedVolume struct {
	// HostPath is the volume's directory on the host, for volumeMounts:
	// <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name> (or the
	// plugin's own path, such as hostPath's). Empty for block volumes.
	HostPath string
	// DevicePath is the block device node for volumeDevices. Empty for
	// filesystem volumes.
	DevicePath string
	// ReadOnly is true when the volume itself is read-only (the pod
	// volume's or the PV's readOnly); mounts are then read-only whatever
	// the volumeMount says.
	ReadOnly bool
	// SELinuxRelabel is unused on this host; kept for the CRI mount.
	SELinuxRelabel bool
}

// SubPathRequest names one volumeMount with a subPath.
type SubPathRequest struct {
	Pod *corev1.Pod
	// Container is the container's name; MountIndex the index of the
	// mount in its volumeMounts.
	Container  string
	MountIndex int
	// Volume is the pod's volume name; SubPath the path inside it,
	// already expanded from subPathExpr.
	Volume  string
	SubPath string
}

// PodStates is what the agent tells the volume manager about pods.
type PodStates interface {
	// Pods returns every pod bound to this node that the agent has not
	// finished with, terminated ones included, until their volumes are
	// down and the agent forgets them. The objects are shared with the
	// agent's informer: read them, never modify them.
	Pods() []*corev1.Pod
	// ContainersTerminated reports whether every container of the pod
	// with this UID is stopped and none will start again (the pod is
	// being deleted, or finished), so its volumes may be torn down.
	ContainersTerminated(uid types.UID) bool
}
