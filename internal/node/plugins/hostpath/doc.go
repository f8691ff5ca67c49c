// Package hostpath is the kubernetes.io/host-path volume plugin, inline
// and as a PersistentVolume. The volume is the host path itself: the
// volume manager hands the runtime that path (plugins.PathPlugin), and
// nothing is mounted or created under the pod directory.
//
// SetUp checks the path's type as upstream does, with upstream's
// messages ("hostPath type check failed: /x is not a directory, it's a
// File"): DirectoryOrCreate (made 0755 when missing), Directory,
// FileOrCreate (made 0644 when missing), File, Socket, CharDevice,
// BlockDevice, and "" (no check). Types are those of stat(2), following
// symlinks, as upstream. TearDown does nothing.
//
// It may call: the file system (stat, mkdir, create) only.
package hostpath
