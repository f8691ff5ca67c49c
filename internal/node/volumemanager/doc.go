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
//     individual failures. When the wait timed out and the plugin of a
//     volume still unattached says the node is out of attachment slots
//     (VerifyExhaustedResource: the CSI attach answered
//     ResourceExhausted), the error is a *VolumeAttachLimitExceededError
//     instead (upstream's text, "Node has reached its volume attachment
//     limit, rejecting pod. ..."): the agent then rejects the pod as the
//     kubelet does, a Warning event and the pod Failed with reason
//     VolumeAttachmentLimitExceeded, and starts none of its containers.
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
// The agent also reads VolumesInUse for the Node's status.volumesInUse
// (the attachable volumes wanted, mounted, or still staged with no pod
// left) and writes it as soon as VolumesInUseChanged fires and the list
// differs from its last write; after each successful write it calls
// MarkVolumesAsReportedInUse with the volumesInUse of the Node the API
// returned (upstream's MarkVolumesAsReportedInUse). It tells the manager,
// through Config.AttachedVolumes, what the Node's status.volumesAttached
// lists. A volume whose plugin is attachable is staged and mounted only
// once it appears there and, unless the actual state already has it
// (another pod's mount, or a volume reconstructed after a restart), once
// a status write has listed it in volumesInUse: the attach/detach
// controller never detaches a volume the Node lists there, so staging
// cannot race a detach (upstream's VerifyControllerAttachedVolume, which
// waits silently, no event; until then WaitForAttachAndMount counts the
// volume unattached, as upstream). Until StatesSynced (reconstruction
// done) VolumesInUse misses what was mounted before a restart, and the
// agent leaves the Node's volumesInUse as it is, as upstream's kubelet.
// The wait is one status write (the agent allows 100 ms between two such
// writes), usually done while the controller attaches: on `volplane up`
// the write came 73 ms before the attachment in one pod start and 62 ms
// after it in another.
//
// Pods the agent removes while the manager is not running (the agent was
// down) are found at start: reconstruction rebuilds the actual state from
// <root>/pods, the mount table and each volume's metadata, and the
// populator, seeing no pod that wants them, tears them down.
//
// # Using it
//
//	m, err := volumemanager.New(volumemanager.Config{
//		RootDir: "/var/lib/volplane/kubelet", NodeName: "node1",
//		Client: nodeClient, Recorder: recorder, Ops: hostops.New(),
//		Pods: agentPods, PodsSynced: agentSynced,
//		AttachedVolumes: func() []corev1.AttachedVolume { ... },
//		Plugins: []plugins.Plugin{emptyDir, hostpath.New(), local.New(), nfs.New(), img, ...},
//	})
//	go m.Run(ctx)
//
// New initialises every plugin with a plugins.Host (whose Remount pushes
// a content update into running pods, and whose Retry ends at once the
// backoff of volumes whose wait is over: a CSI driver registered) and touches nothing on the host;
// Run reconstructs, then runs the populator, the reconciler and the
// orphan cleanup until ctx is done. Stopping it unmounts nothing.
//
// # On disk
//
//	<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>   a pod's volume (PV name for PVs)
//	<root>/pods/<uid>/volumeDevices/kubernetes.io~<plugin>/<name>  symlink to a block device
//	<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>  subPath bind mounts
//	<root>/pods/<uid>/volume-meta/<plugin>~~<name>.json         the record of a pod volume
//	<root>/plugins/kubernetes.io~<plugin>/volumeDevices/<volume>/<uid>  bind mount of a block device
//	<root>/plugins/kubernetes.io~<plugin>/volume-meta/<hex>.json  the record of a global mount
//
// A record is written (fsync, rename, fsync) before anything of its
// volume touches the host and removed only after the host is clean, so
// after kill -9 at any point every possible mount has a record.
// Reconstruction puts recorded volumes and device (staging) mounts in the
// actual state as uncertain, as upstream does, a device even when its
// path is a mount point (NodeStage may have been cut short after its
// mount); the reconciler then runs the plugin's idempotent MountDevice
// and SetUp again for a pod
// that still wants the volume (it finds the mount and mounts nothing) or
// TearDown for one that does not. Nothing is torn down until the agent's
// pod list is synced (PodsSynced) and the populator has made a full
// pass. Pod directories the agent no longer lists and that hold no
// volume are removed every 2 s, only when nothing is mounted beneath
// them (kubernetes#72257), with a walk that never crosses a filesystem
// boundary; one that holds a mount is logged and kept.
//
// # Events and errors
//
// The reconciler emits upstream's per-volume events on the pod, naming
// the volume as upstream's volume spec does (the PV for a claim's volume,
// the pod's volume name otherwise): FailedMount "MountVolume.SetUp failed
// for volume "x" : ...", "MountVolume.MountDevice failed ...",
// "MountVolume.NodeAffinity check failed ..." ("MapVolume.NodeAffinity
// ..." for a block volume, still FailedMount); FailedMapVolume
// "MapVolume.SetUpDevice failed ...", "MapVolume.MapPodDevice failed ...";
// an attachment a plugin finds incomplete (plugins.AttachError) is
// upstream's "MountVolume.WaitForAttach failed ..." ("MapVolume..." for a
// block volume), whichever step found it.
// It retries with backoff from 500 ms doubling to 2 m 2 s, one operation per
// volume at a time. WaitForAttachAndMount returns upstream's
// "unmounted volumes=[...], unattached volumes=[...], failed to process
// volumes=[...]: <cause>", which the agent turns into "Unable to attach
// or mount volumes: ...": the cause is the pod's processing errors
// ("error processing PVC default/data: PVC is not bound"), returned at
// once and then every 10 s while they last, as upstream's kubelet reports
// them at each retry of the pod; else "context deadline exceeded" (capped,
// as upstream, at 2 m 3 s). Between two reports the wait goes on, so the
// pod starts as soon as its claim is bound rather than at a retry.
//
// # Departures from upstream, on purpose
//
//   - Claims, volumes and the Node are read with Get through a cache of
//     APICacheTTL (1 s), because the Node authorizer allows nothing else.
//   - A disk emptyDir's sizeLimit is a btrfs qgroup when the emptyDir
//     plugin has a btrfs directory (package emptydir); without one the
//     limit is not enforced (no eviction yet).
//   - The per-volume records replace upstream's reconstruction from
//     plugin-specific guesses (and its vol_data.json for CSI only).
//   - The agent writes the Node's volumesInUse as soon as it changes, so
//     the wait for a volume to be reported in use is one status write;
//     upstream's kubelet writes at its next status sync, up to 10 s later
//     (kubernetes#28141).
//   - Between two reports of a pod's processing errors the wait goes on
//     (upstream's kubelet ends it and retries the pod 10 s later), so a
//     pod waiting for its claim starts as soon as the claim is bound.
//
// It may call: its subpackages, the plugins, package subpath,
// hostops.Host and the API as the node.
package volumemanager
