// Package volumemanager puts a pod's volumes into the pod and takes them
// out again, the way seed 001 draws the kubelet's Volume Manager: a cache
// of the desired and the actual state of the world (package cache), a
// populator that fills the desired state from the pods bound to this node
// (package populator), a reconciler that converges the two one operation
// per volume at a time (package reconciler), and reconstruction of the
// actual state from the pod directories and the mount table after a
// restart.
//
// # The seam with the node agent
//
// This is the one interface between the pod workers (package agent) and
// the volumes. It is agreed here and nowhere else.
//
//  1. The agent gives the manager a PodStates (Config.Pods): the pods it
//     knows are bound to this node, and for each whether its containers
//     are all stopped. The populator adds a pod's volumes to the desired
//     state while the pod should run and removes them only once
//     ContainersTerminated says its containers are gone, so a volume is
//     never unmounted under a running container.
//  2. Before it creates a pod's containers the agent calls
//     WaitForAttachAndMount(ctx, pod). It returns nil once every volume the
//     pod's containers use is attached (where attachable) and mounted, or
//     an error whose text is upstream's ("unmounted volumes=[...],
//     unattached volumes=[...], failed to process volumes=[...]: context
//     deadline exceeded") for the agent's FailedMount event. The
//     manager emits its own FailedMount / FailedMapVolume events for the
//     individual failures.
//  3. The agent then calls PodVolumes(pod.UID): by the pod's volume name,
//     where each volume is on the host (a directory for filesystem
//     volumes, a device node for block volumes) and whether it is
//     read-only. It builds every container mount from that: volumeMounts
//     become bind mounts of HostPath, volumeDevices device nodes of
//     DevicePath.
//  4. A volumeMount with subPath (or subPathExpr, expanded by the agent
//     from the container's environment) is never joined to HostPath by
//     the agent: it calls PrepareSubPath, which resolves the path inside
//     the volume through file descriptors, bind-mounts what it opened to
//     <root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>, and
//     returns that path. The runtime bind-mounts the returned path and
//     never resolves the subPath again.
//  5. When the pod's containers are gone (ContainersTerminated is true)
//     the agent calls WaitForUnmount(ctx, pod); it returns once the
//     populator has removed the pod's volumes and the reconciler has torn
//     every one down (subpath mounts, SetUp, and the device mount when no
//     other pod uses it). Only then does the agent remove the pod
//     directory and delete the pod object.
//
// The agent also reads VolumesInUse for the Node's status.volumesInUse and
// tells the manager, through Config.AttachedVolumes, what the Node's
// status.volumesAttached lists: a volume whose plugin is attachable is
// mounted only once it appears there.
//
// Pods the agent removes while the manager is not running (the agent was
// down) are found at start: reconstruction rebuilds the actual state from
// <root>/pods, the mount table and each volume's metadata, and the
// populator, seeing no pod that wants them, tears them down.
package volumemanager
