// Package agent is the node agent: what `volplane node` runs, and what
// `volplane up` runs for its own machine. It owns the node's identity,
// its Node object and Lease, and wires the node's parts together: the
// runtime (package runtime, behind the CRI interfaces), the volume
// manager, the pod workers and the kubelet API.
//
// Identity. The agent is system:node:<name> in system:nodes, so the Node
// authorizer and the NodeRestriction admission plugin limit it to its own
// Node, its own pods and what they reference (PVs and PVCs by `get`
// only). Its client certificate lives in <root>/pki as the kubelet's
// (kubelet-client-current.pem) and is kept by client-go's certificate
// manager: a joining node asks for the first one through the CSR API with
// its bootstrap token (signer kubernetes.io/kube-apiserver-client-kubelet,
// approved and signed by upstream's csrapproving and csrsigning
// controllers), `up` has the control plane in the same process sign it;
// both renew it through the CSR API before it expires, and client-go
// re-reads the file. <root>/kubeconfig names that certificate, for tools
// run on the node.
//
// Node. The agent registers its Node with kubernetes.io/hostname set to
// the node name (several nodes may share one machine; local PVs pin to
// that label), the os and arch labels and the
// volumes.kubernetes.io/controller-managed-attach-detach annotation (the
// attach/detach controller attaches, not the node). It writes the status
// (capacity, addresses, the kubelet endpoint, node info, the four
// conditions, volumesInUse) at start, every StatusUpdateFrequency and as
// soon as the volumes in use change (the volume manager's
// VolumesInUseChanged; at most one such write every 100 ms), and after
// each successful write tells the volume manager which volumes the
// returned Node lists in volumesInUse (MarkVolumesAsReportedInUse, as the
// kubelet's node status updater does): the volume manager stages a new
// attachable volume only after that, so the attach/detach controller
// cannot detach it meanwhile. It renews its Lease in kube-node-lease
// every LeaseRenewInterval, so upstream's node-lifecycle controller sees
// it alive and taints it once it is gone. Its events about the Node are
// upstream's kubelet's: Starting "Starting kubelet." at each start, and
// "Node N status is now: R" as it sets the conditions (a pressure
// condition that is new or changes, NodeHasSufficientMemory and the like;
// Ready when an existing condition changes, NodeReady or NodeNotReady).
//
// CSI drivers. The agent owns one csidrivers.Registry for its lifetime;
// the plugin watcher (package pluginwatcher) creates the node's CSINode at
// start, as the kubelet does, and registers the drivers whose sockets
// appear in <root>/plugins_registry/ into that registry, the CSINode and
// the Node's nodeid annotation and topology labels.
//
// Stopping the agent stops no container and unmounts no volume: pods run
// on under their conmon monitors, and the next agent adopts them.
package agent
