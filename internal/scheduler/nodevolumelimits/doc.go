// Package nodevolumelimits is volplane's volume limits plugin for the
// embedded kube-scheduler, registered as "VolplaneNodeVolumeLimits" at
// the extension points upstream's NodeVolumeLimits occupies (PreFilter,
// Filter; turned off).
//
// A node's CSINode lists, per CSI driver, allocatable.count: how many of
// that driver's volumes the node may have attached (the node agent
// writes it from NodeGetInfo's max_volumes_per_node). Filter counts, per
// driver, the node's volumes as upstream counts them: the claim-backed
// and generic ephemeral volumes of the pods on the node (a bound claim
// by its PV's CSI driver and handle, an unbound one by its class's
// provisioner, one volume per claim), plus the VolumeAttachments naming
// the node whose volumes no pod there uses; a volume counts once however
// many pods share it. The pod fits when, for every driver of its new
// volumes (those not already on the node), the count plus the new ones
// stays within the limit; otherwise the reason is upstream's "node(s)
// exceed max volume count", Unschedulable (evicting a pod frees a
// slot). A driver without a count, or a node without a CSINode, has no
// limit. CSI inline volumes are not counted (as upstream). A pod's claim
// that does not exist makes it UnschedulableAndUnresolvable.
//
// Departures: upstream also translates in-tree volumes (GCE PD, EBS,
// Azure, Cinder, vSphere) to their CSI drivers for migration; volplane
// has none of those drivers, so such volumes are not counted. The alpha
// VolumeLimitScaling rule (CSIDriver preventPodSchedulingIfMissing) is
// not built.
//
// limits.go holds the pure functions, with table tests. The package may
// call client-go, component-helpers and the scheduler framework
// interfaces; never upstream's volume plugins or storage code.
package nodevolumelimits
