// Package pluginwatcher is the node agent's plugin manager for CSI
// drivers: it watches <root>/plugins_registry/ for registration sockets
// and registers the driver behind each one the way the kubelet does, so
// that the stock node-driver-registrar (or volplane's own
// internal/csi/registrar) registers a driver with volplane unchanged.
//
// Registration of one socket, as upstream's plugin manager and CSI
// registration handler:
//
//  1. dial the socket and call the kubelet plugin-registration API
//     (k8s.io/kubelet/pkg/apis/pluginregistration/v1) Registration.GetInfo;
//  2. accept type "CSIPlugin" only (any other type is told
//     plugin_registered=false, "no handler registered for plugin type");
//  3. validate the driver's name (a DNS-1123 subdomain of at most 63
//     characters), its endpoint (GetInfo's endpoint, or the registration
//     socket's own path when that is empty, as upstream; it must be a unix
//     socket) and its versions (the highest one must be 1.x, upstream's
//     HighestSupportedVersion). A second socket for a name already
//     registered is refused unless it offers a higher version, upstream's
//     "Another driver with the same name is already registered" rule;
//  4. NodeGetInfo on the driver's endpoint (volplane/internal/csi/client);
//  5. the Node: the csi.volume.kubernetes.io/nodeid annotation (a JSON map
//     driver -> node ID, merged with other drivers') and the topology
//     segments as labels, by a merge patch of only those keys; a label
//     already set to another value is upstream's "detected topology value
//     collision" error;
//  6. the CSINode of this node: created when missing, owned by the Node (an
//     owner reference with the Node's UID, so the garbage collector removes
//     it with the Node; one owned by an older Node of the same name is
//     deleted and made again), with the driver's entry {name, nodeID,
//     topologyKeys sorted, allocatable.count = max volumes when > 0};
//  7. the driver added to the csidrivers.Registry the CSI volume plugin
//     reads, last, so it never sees a driver whose objects are not written;
//  8. NotifyRegistrationStatus(plugin_registered=true).
//
// Any failure after step 1 is told to the socket as
// plugin_registered=false with the error, and what the attempt changed is
// undone (registry, CSINode entry, annotation key, labels): nothing is left
// half-done. A failed socket is tried again with a backoff from 1 s to
// about 2 min, as upstream's reconciler does.
//
// Unregistration undoes all of it when the socket file is removed, or when
// a rescan (every RescanPeriod) finds a registered socket that no longer
// answers (its process died and left the file). A socket re-created at the
// same path is registered again in place.
//
// Restart. Registration state lives in memory only. At start the watcher
// makes sure the CSINode exists (with no drivers when new, as the kubelet
// does at its start), registers every socket already in the directory, and
// only once those first attempts are done removes from the CSINode and the
// nodeid annotation the drivers that did not register: a restart never
// drops a driver whose socket still answers. Stopping the watcher
// unregisters nothing.
//
// Departures from upstream, on purpose:
//   - only sockets directly in the directory are watched (upstream also
//     walks subdirectories, a layout no current registrar uses); names
//     starting with "." are ignored as upstream ignores them;
//   - unregistering also removes the driver's topology labels when no other
//     registered driver reports the same key (upstream leaves them), and the
//     drivers left in the CSINode by an earlier run whose sockets are gone
//     are removed at start (upstream keeps them until the driver returns);
//   - GetInfo gets Config.CallTimeout (default 10 s) rather than upstream's
//     1 s: the node may be loaded, and a retry costs a backoff;
//   - the CSINode carries no storage.alpha.kubernetes.io/migrated-plugins
//     annotation: volplane migrates no in-tree plugin to CSI.
//
// Allocatable refresh (allocatable.go; upstream's csiNodeUpdater,
// KEP-4876 "mutable CSINode allocatable", on by default as in v1.37): for
// every registered driver whose CSIDriver sets
// nodeAllocatableUpdatePeriodSeconds, NodeGetInfo is called again once
// per period and its max_volumes_per_node written as the CSINode entry's
// allocatable.count (none when 0); the node ID, topology keys and labels
// stay as registration wrote them. CSIDriver objects come from an
// informer; registrations, unregistrations and period changes are picked
// up within a second, the first refresh is one period after
// registration. RefreshAllocatable does one refresh at once: the CSI
// volume plugin calls it when an attachment failed with
// ResourceExhausted (upstream's VerifyExhaustedResource).
//
// Logs, not events, report registration, as upstream's kubelet.
//
// The package calls the API through client-go (its own Node, its own
// CSINode: what NodeRestriction lets a node do; a CSIDriver informer), the registration API's
// generated client, volplane/internal/csi/client for NodeGetInfo, and fills
// volplane/internal/node/csidrivers. It mounts nothing.
package pluginwatcher
