// Package downwardapi is the downwardAPI volume plugin,
// "kubernetes.io/downward-api": fields of the pod and resources of its
// containers as files in
// <root>/pods/<uid>/volumes/kubernetes.io~downward-api/<name>, a tmpfs as
// upstream's (it wraps a memory emptyDir), written by package
// atomicwriter.
//
// CollectData, FieldValue and ResourceValue are the pure part, also used
// by the projected plugin:
//
//   - fieldRef: metadata.name, metadata.namespace, metadata.uid,
//     metadata.labels and metadata.annotations (key="value" lines sorted
//     by key, values Go-quoted, as upstream), one label or annotation by
//     subscript (metadata.labels['k']). Beyond what the API lets a volume
//     ask (it validates the list above), the fields env can read are
//     served too: spec.nodeName, spec.serviceAccountName, status.hostIP,
//     status.hostIPs, status.podIP, status.podIPs.
//   - resourceFieldRef: limits/requests of cpu, memory,
//     ephemeral-storage and hugepages-<size> of the named container
//     (init containers included), divided by the divisor (1 when unset)
//     and rounded up; a container without a cpu, memory or
//     ephemeral-storage limit reads the node's status.allocatable, which
//     SetUp then gets from the Node object (a node may read its own).
//
// Errors of all items are returned together, as upstream aggregates them.
//
// The content depends only on the pod: the plugin is a Remounter and the
// volume manager calls SetUp again when the pod object changes (labels,
// annotations, IPs); SetUp is a no-op when nothing changed.
package downwardapi
