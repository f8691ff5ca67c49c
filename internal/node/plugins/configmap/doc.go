// Package configmap is the configMap volume plugin,
// "kubernetes.io/configmap": the keys of a configMap (data and
// binaryData) as files in <root>/pods/<uid>/volumes/kubernetes.io~configmap/<name>,
// written by package atomicwriter in upstream's layout. The directory is
// on disk, as upstream's.
//
// MakePayload is the pure part, also used by the projected plugin: all
// keys with defaultMode, or the items (key, path, mode); a key an item
// names that the configMap lacks fails with upstream's message
// ("configmap references non-existent config key: k") unless the volume
// is optional.
//
// The configMap comes from package objectcache: one watch per configMap
// (a field selector on its name, as the Node authorizer allows), shared
// by every pod that shows it and stopped after the last TearDown. A
// missing configMap fails SetUp with `configmap "x" not found` (an
// optional one shows an empty volume); when it appears, or changes, the
// plugin's OnChange callbacks get the volume's name (package apivolume
// describes the seam), the volume manager calls SetUp again, and the pod
// sees the new content within moments instead of upstream's 60-90 s.
//
// The user fields of the alpha AtomicWriteVolumeUserFields gate
// (items[].user) are not applied, as upstream with the gate off.
package configmap
