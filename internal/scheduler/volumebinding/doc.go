// Package volumebinding is volplane's binding plugin for the embedded
// kube-scheduler, registered as "VolplaneVolumeBinding" at the extension
// points upstream's VolumeBinding occupies (which is turned off):
//
//	PreFilter   look up the pod's claims (persistentVolumeClaim and
//	            generic ephemeral volumes); an unbound claim of an
//	            Immediate class, or one naming its volume, is the PV
//	            controller's: "pod has unbound immediate
//	            PersistentVolumeClaims"
//	Filter      findPodVolumes (find.go, pure): a bound claim's PV
//	            nodeAffinity must admit the node; each delayed-binding
//	            claim (WaitForFirstConsumer, unbound) gets an available
//	            volume by the PV controller's own rules
//	            (internal/volumematch) that the node reaches, or else must
//	            be provisionable there: class provisioner set (not
//	            kubernetes.io/no-provisioner), allowedTopologies admit the
//	            node, and for a CSI driver with storageCapacity: true a
//	            CSIStorageCapacity of the class selecting the node has
//	            room (maximumVolumeSize first)
//	PreScore/   score.go: the pod's use of the chosen volumes (or of the
//	Score       capacity) through Args.Shape, default least utilised first,
//	            as upstream's StorageCapacityScoring
//	Reserve/    the chosen volumes are assumed bound in the volume cache
//	Unreserve   (cache.go) so that no other pod is given them; the
//	            provisioned claims' node is remembered
//	PreBind     writes what upstream's scheduler writes: the volume's
//	            claimRef (+ pv.kubernetes.io/bound-by-controller), the
//	            claim's volume.kubernetes.io/selected-node; then waits on
//	            the informers until every claim is bound by the PV
//	            controller (internal/controller/binder), or Args.BindTimeout
//
// Reasons use upstream's words, so FailedScheduling events read as
// upstream's. The statuses and the claim side of a binding are the PV
// controller's to write; the scheduler's RBAC (system:volume-scheduler)
// allows it the volume and claim updates above only.
//
// Departures from upstream: in-tree volumes are not translated to CSI
// (volplane has no in-tree cloud volumes), and the volume cache keeps
// bindable volumes in volumematch's indexes rather than a list per class:
// one per hostname for volumes pinned to a single node (local volumes),
// one for the rest, so Filter on a node looks at that node's local
// volumes only (BenchmarkFindPodVolumes: 100 nodes of 10 local volumes).
// The choice is the same as one index's (volumematch.Better).
//
// The package may call client-go, component-helpers, the scheduler
// framework interfaces and internal/volumematch; never upstream's volume
// plugins or storage code.
package volumebinding
