// Package plugins is the interface every volume plugin of the node agent
// implements, and the registry the volume manager finds them in. Each
// plugin is a package of its own below this one (emptydir, hostpath,
// configmap, secret, downwardapi, projected, local, nfs, csi, flexvolume,
// ...), named after upstream's plugin ("kubernetes.io/empty-dir"), so its
// pod directory is upstream's: <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>.
//
// A plugin does the work for one volume at a time; the volume manager
// decides when, keeps one operation in flight per volume, retries with
// backoff, records what is mounted and emits events. A plugin never
// decides on its own to unmount, and never touches a path outside the
// directories it is handed and its own plugin directory
// (<root>/plugins/kubernetes.io~<name>/).
//
// Every operation is idempotent: SetUp of a volume already set up the
// same way succeeds without mounting twice, TearDown of a directory that
// holds nothing succeeds. That is what makes a restart at any point safe.
//
// Optional interfaces say what else a plugin does: DeviceMounter (a
// per-node global mount before the pods' SetUp), Attachable (wait for
// status.volumesAttached), Remounter (SetUp again when content changes),
// PathPlugin (the volume lives at a host path of its own, hostPath),
// ContentDirPlugin (the content is below the pod directory, CSI's
// <dir>/mount), BlockMapper (raw block devices) and PodBlockMapper (a
// block device made available per pod, CSI's raw block publish). Helpers shared by plugins:
// SetVolumeOwnership (fsGroup, fsGroupChangePolicy), MountsUnder,
// PodScopedVolumeName, PodVolumeDir.
//
// Privileged work goes through hostops.Host (Host.Ops); API reads go
// through Host.Client with the node's own identity, which the Node
// authorizer limits to objects the node's pods reference.
package plugins
