// Package reconstruction lets the volume manager start again after a
// crash (kill -9 at any point of a mount or an unmount) without
// remounting, doubling a mount or losing data.
//
// The reconciler writes a Record for a pod volume (and a DeviceRecord for
// a global device mount) durably before it touches the host, and removes
// it only once the host is clean again. At start, Reconstruct reads
// every record under <root>/pods/*/volume-meta and
// <root>/plugins/*/volume-meta and puts each pod volume in the actual
// state as Uncertain: if a pod still wants it, the reconciler runs the
// plugin's SetUp again, which finds the mount already there and mounts
// nothing; if no pod wants it, TearDown runs (also idempotent) and the
// record goes. A device record whose path is a mount point puts the
// device in the actual state as mounted; one whose path is not (raw
// block staging, a driver that stages nothing at the path, a
// MountDevice cut short) as uncertain: the reconciler runs MountDevice
// again before a pod that wants the volume is set up, and UnmountDevice
// (idempotent) when no pod wants it, so a staged volume or an attached
// loop device is never forgotten. Neither can touch a volume a pod uses:
// UnmountDevice runs only once no pod has the volume in either state,
// and a repeated MountDevice (CSI NodeStageVolume) is idempotent.
//
// CleanOrphans removes the directories of pods the agent no longer
// knows and the volume manager holds nothing for, but only when nothing
// is mounted anywhere beneath them (kubernetes#72257: removing a pod
// directory through a mount deletes the volume's data), and it removes
// with a walk that never crosses into another filesystem. A directory
// that still holds a mount is reported and kept.
//
// It may call: hostops.Host (the mount table), the actual state, and
// package atomicfile for durable records.
package reconstruction
