// Package local is the kubernetes.io/local-volume plugin: PersistentVolumes
// with spec.local, a path on this node (a directory or a block device),
// pinned by nodeAffinity (checked again at mount time by the volume
// manager, as upstream).
//
// Filesystem mode: the path must be a directory; SetUp bind-mounts it
// onto <root>/pods/<uid>/volumes/kubernetes.io~local-volume/<pv name>
// (read-only when the claim or PV says so) and applies the pod's
// fsGroup unless read-only. A block device path in Filesystem mode
// (upstream formats and mounts it once per node) is refused with a clear
// error: volplane's local PVs are directories. Block mode: the path must
// be a block device, which the volume manager maps (plugins.BlockMapper).
// The unique volume name is per PV, shared by the pods that use it.
//
// It may call: hostops.Host (BindMount, Unmount, IsMountPoint).
package local
