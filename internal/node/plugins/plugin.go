package plugins

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"volplane/internal/hostops"
)

// Spec is one volume of a pod, resolved: an inline pod volume, or the
// PersistentVolume a persistentVolumeClaim (or generic ephemeral) volume
// leads to.
type Spec struct {
	// Name is the pod's name for the volume (pod.spec.volumes[].name).
	Name string
	// Volume is the pod's volume; for a claim, the persistentVolumeClaim
	// or ephemeral volume itself.
	Volume *corev1.Volume
	// PV is the bound PersistentVolume of a claim, nil for inline volumes.
	PV *corev1.PersistentVolume
	// ReadOnly is the claim source's readOnly or the inline source's.
	ReadOnly bool
	// Block is true for volumeMode: Block.
	Block bool
}

// SetUpArgs is what SetUp gets.
type SetUpArgs struct {
	Spec *Spec
	Pod  *corev1.Pod
	// Dir is the pod volume directory to fill:
	// <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>.
	Dir string
	// DeviceMountPath is where MountDevice put the volume, for plugins
	// that are DeviceMounters; empty otherwise.
	DeviceMountPath string
	// FSGroup is the pod's securityContext.fsGroup, nil when unset;
	// FSGroupChangePolicy its change policy.
	FSGroup             *int64
	FSGroupChangePolicy *corev1.PodFSGroupChangePolicy
}

// Plugin is a volume plugin. The volume manager calls it for the volumes
// CanSupport accepts.
type Plugin interface {
	// Name is upstream's plugin name, such as "kubernetes.io/empty-dir".
	// The pod directory is named after it with "/" as "~".
	Name() string
	// Init is called once, before any other method.
	Init(host *Host) error
	// CanSupport reports whether spec is this plugin's.
	CanSupport(spec *Spec) bool
	// VolumeName is the volume's unique name on this node, the key of the
	// volume manager's caches and of status.volumesInUse: for volumes
	// that live as long as the pod, "<plugin>/<pod uid>-<name>"; for
	// persistent volumes one name per backing volume, shared by the
	// pods that use it.
	VolumeName(spec *Spec, pod *corev1.Pod) (string, error)
	// SetUp makes the volume's content appear at args.Dir.
	SetUp(ctx context.Context, args SetUpArgs) error
	// TearDown undoes SetUp at dir. Nothing set up at dir is not an error.
	TearDown(ctx context.Context, dir string) error
}

// DeviceMounter is a plugin whose volume is first mounted once per node
// at a global path (MountDevice, CSI's NodeStageVolume) and then set up
// into each pod from there.
type DeviceMounter interface {
	Plugin
	// DeviceMountPath is the volume's global mount path on this node.
	DeviceMountPath(spec *Spec) (string, error)
	// MountDevice mounts the volume at deviceMountPath.
	MountDevice(ctx context.Context, spec *Spec, deviceMountPath string) error
	// UnmountDevice undoes MountDevice; called only when no pod uses
	// the volume any more.
	UnmountDevice(ctx context.Context, deviceMountPath string) error
}

// Attachable is a plugin whose volumes the attach/detach controller
// attaches to the node first: the volume manager mounts them only once
// the Node's status.volumesAttached lists them.
type Attachable interface {
	Plugin
	// Attachable reports whether this volume needs attaching (a CSI
	// driver may say attachRequired: false).
	Attachable(spec *Spec) bool
}

// AttachError is what a plugin returns when its volume's attachment to
// this node is not complete (not attached yet, failed, being deleted):
// the volume manager reports it as upstream's kubelet reports its
// WaitForAttach step, whichever step found it.
type AttachError struct{ Err error }

func (e *AttachError) Error() string { return e.Err.Error() }
func (e *AttachError) Unwrap() error { return e.Err }

// Remounter is a plugin whose content follows objects in the API
// (configMap, secret, downwardAPI, projected): SetUp is called again when
// they change, and must update the content atomically.
type Remounter interface {
	Plugin
	RequiresRemount(spec *Spec) bool
}

// PathPlugin is a plugin whose volume is not in the pod volume directory
// but at a path of its own on the host (hostPath): the volume manager
// hands the runtime VolumePath instead of the pod directory, and SetUp
// gets args.Dir only to check and create.
type PathPlugin interface {
	Plugin
	// VolumePath is where the volume's content is on the host.
	VolumePath(spec *Spec) string
}

// ContentDirPlugin is a plugin whose SetUp puts the volume's content not
// at args.Dir itself but at a path below it, keeping its own files beside
// it (CSI publishes at <dir>/mount, with vol_data.json in <dir>): the
// volume manager hands the runtime ContentDir(dir) instead of the pod
// directory. TearDown still gets dir.
type ContentDirPlugin interface {
	Plugin
	// ContentDir is where the content of the volume set up at dir is.
	ContentDir(dir string) string
}

// BlockMapper is a plugin that gives pods raw block devices (volumeMode:
// Block). The volume manager lays the device out as upstream does: a
// bind mount of the device node at
// <root>/plugins/kubernetes.io~<plugin>/volumeDevices/<volume>/<pod uid>,
// which keeps the device busy while a pod uses it, and a symlink to the
// device at <root>/pods/<uid>/volumeDevices/kubernetes.io~<plugin>/<name>,
// which is what the runtime gets.
type BlockMapper interface {
	Plugin
	// BlockDevice returns the block device node of spec on this node,
	// after checking that it is one.
	BlockDevice(ctx context.Context, spec *Spec) (string, error)
}

// PodBlockMapper is a block plugin whose device is made available for each
// pod (CSI publishes a raw block volume per pod): the volume manager calls
// MapPodDevice instead of BlockDevice, after MountDevice when the plugin
// is a DeviceMounter too (for block volumes as for filesystems), and
// UnmapPodDevice once it has removed the pod's link and bind mount
// (UnmountDevice after the last pod).
type PodBlockMapper interface {
	Plugin
	// MapPodDevice returns the block device node, or a file bind-mounted
	// on one, of the pod's volume. args.Dir is the pod's device link.
	MapPodDevice(ctx context.Context, args SetUpArgs) (string, error)
	// UnmapPodDevice undoes MapPodDevice for the pod; nothing mapped is
	// not an error.
	UnmapPodDevice(ctx context.Context, spec *Spec, podUID types.UID) error
}

// Host is what plugins get from the node agent.
type Host struct {
	// RootDir is the agent's --root-dir.
	RootDir string
	// NodeName is this node's name.
	NodeName string
	// Ops does all privileged work.
	Ops hostops.Host
	// Client is the API as the node's identity.
	Client kubernetes.Interface
	// Recorder emits events on pods.
	Recorder record.EventRecorder
	// Log is the plugin's logger.
	Log *slog.Logger
	// Remount asks the volume manager to call SetUp again, soon, for
	// the pod's volumes whose plugin is a Remounter that requires it:
	// how a plugin that watches its objects pushes an update into
	// running pods. Never nil once Init is called.
	Remount func(podUID types.UID)
	// Retry asks the volume manager to retry at once the failed
	// operations, still backing off, of the volumes (by unique name) that
	// match selects: how a plugin says that what they waited for (a CSI
	// driver registering) has come. It does not block, and may be called
	// from any goroutine. Never nil once Init is called.
	Retry func(match func(volumeName string) bool)
}

// PluginDir is <root>/plugins/kubernetes.io~<name>, a plugin's own
// directory for global mounts and metadata.
func (h *Host) PluginDir(pluginName string) string {
	return h.RootDir + "/plugins/" + EscapeName(pluginName)
}

// EscapeName turns a plugin name into its directory name, as upstream:
// "kubernetes.io/empty-dir" -> "kubernetes.io~empty-dir".
func EscapeName(pluginName string) string {
	b := []byte(pluginName)
	for i, c := range b {
		if c == '/' {
			b[i] = '~'
		}
	}
	return string(b)
}

// PodVolumeDir is the directory of a pod's volume:
// <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>.
func PodVolumeDir(rootDir string, podUID types.UID, pluginName, volumeName string) string {
	return rootDir + "/pods/" + string(podUID) + "/volumes/" + EscapeName(pluginName) + "/" + volumeName
}

// PodDeviceDir is the directory of a pod's block volume links:
// <root>/pods/<uid>/volumeDevices/kubernetes.io~<plugin>.
func PodDeviceDir(rootDir string, podUID types.UID, pluginName string) string {
	return rootDir + "/pods/" + string(podUID) + "/volumeDevices/" + EscapeName(pluginName)
}
