// Package nfs is the kubernetes.io/nfs volume plugin, inline and as a
// PersistentVolume: SetUp runs
//
//	mount -t nfs [-o <PV mountOptions>,ro] <server>:<path> <pod volume dir>
//
// through hostops.MountCommand (mount.nfs from nfs-common does the
// protocol work), with "ro" when the source or the claim is read-only and
// an IPv6 server in brackets. A host needs the nfs-common package and a
// kernel with the NFS client (CONFIG_NFS_FS); this machine's kernel has
// none, so here the mount fails and the pod waits with upstream's event
// ("MountVolume.SetUp failed for volume ... : mount failed: ..."). The
// unique volume name is per pod, as upstream. TearDown unmounts.
//
// It may call: hostops.Host (MountCommand, Unmount, IsMountPoint).
package nfs
