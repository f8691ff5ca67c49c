// Package reconciler converges the actual state of the world on the
// desired one, the kubelet reconciler's job. Each pass (every 100 ms, or
// at once when triggered) walks both caches and starts operations:
//
//  1. Tear down what no pod wants any more (only once the desired state
//     is complete, Config.Ready, so that a restart never tears down the
//     volumes of running pods the populator has not seen yet): subPath
//     mounts first, then the plugin's TearDown (or the raw block
//     mapping), then the pod volume directory and the volume's record.
//  2. Unmount global device mounts no pod uses (DeviceMounter's
//     UnmountDevice), then drop the device record. An uncertain device
//     (reconstructed without a mount at its path, or whose MountDevice
//     failed) is unmounted too; if a pod wants it, MountDevice runs
//     again first.
//  3. Mount what pods want: when the plugin says the volume is
//     attachable, wait for status.volumesAttached and, for a volume the
//     actual state does not have yet, for a status write that listed it
//     in status.volumesInUse (cache.VolumeToMount.ReportedInUse), as
//     upstream's VerifyControllerAttachedVolume, silently; check a PersistentVolume's
//     nodeAffinity against this node's labels again; MountDevice to the
//     global path for DeviceMounters; then SetUp into
//     <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name> (the PV's
//     name for persistent volumes, as upstream), or map the block device
//     (see plugins.BlockMapper; a PodBlockMapper is staged by MountDevice
//     first and mapped per pod, and unmapped by the plugin after the pod's
//     link and bind mount are gone). A Remounter's volume is set up again
//     when a remount is requested.
//
// One operation is in flight per volume (by unique name). A failed
// operation is retried with exponential backoff, 500 ms doubling to
// 2 m 2 s as upstream, and emits upstream's event on the pod, the volume
// named as upstream's spec names it (the PV of a claim): FailedMount
// "MountVolume.SetUp failed for volume "x" : ..." (MountDevice,
// NodeAffinity check likewise; a block volume's NodeAffinity check is
// "MapVolume.NodeAffinity check failed", still FailedMount, as upstream),
// FailedMapVolume "MapVolume.SetUpDevice failed for volume "x" : ..." (a
// block volume's staging) and "MapVolume.MapPodDevice failed ...".
//
// Every record (reconstruction.Store) is written before the host is
// touched and removed only after the host is clean, so a crash at any
// point leaves a record of anything that may be mounted.
//
// It may call: the caches, the plugins, hostops.Host, package subpath,
// reconstruction.Store, and the event recorder.
package reconciler
