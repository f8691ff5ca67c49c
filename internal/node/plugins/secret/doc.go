// Package secret is the secret volume plugin, "kubernetes.io/secret":
// the keys of a secret as files in
// <root>/pods/<uid>/volumes/kubernetes.io~secret/<name>, which is always
// a tmpfs mounted by SetUp (through hostops) and unmounted by TearDown,
// so secret content never reaches the disk. A SetUp that mounted the
// tmpfs and failed to write unmounts it again.
//
// MakePayload is the pure part, also used by the projected plugin: all
// keys of data with defaultMode, or the items (key, path, mode); a key
// the secret lacks fails with upstream's message ("references
// non-existent secret key: k") unless the volume is optional.
//
// The secret comes from package objectcache, as configMaps do (see
// package configmap): a per-object watch the Node authorizer permits,
// `secret "x" not found` while it is missing, and a change notification
// through OnChange when it appears or changes. Secret content is never
// logged.
package secret
