// Package scheduler is the root of volplane's volume plugins for the
// embedded upstream kube-scheduler (internal/controlplane runs it with
// upstream's VolumeBinding, VolumeZone, VolumeRestrictions and
// NodeVolumeLimits turned off). Each plugin is a package of its own, in
// the scheduler-plugins pattern: Args with defaults and Validate, a
// Factory the control plane registers under a volplane name
// (controlplane.Config.SchedulerPlugins), pure filter and score
// functions with table tests, and the cluster events with queueing hints
// that make a rejected pod be retried when something relevant changes.
//
//	volumebinding  "VolplaneVolumeBinding": bound claims' PV node affinity,
//	               delayed binding (choose a PV or mark the claim for
//	               provisioning), StorageClass allowedTopologies,
//	               CSIStorageCapacity, capacity scoring
//	volumezone     "VolplaneVolumeZone": zone and region labels of bound PVs
//	volumerestrictions "VolplaneVolumeRestrictions": ReadWriteOncePod, one
//	               pod per claim, with preemption
//	nodevolumelimits "VolplaneNodeVolumeLimits": CSINode allocatable.count
//	               per driver against the node's CSI volumes
//	schedbench     `volplane bench scheduler`: pods with a delayed-binding
//	               claim each against pods without volumes
//
// The plugins may import the scheduler framework
// (k8s.io/kube-scheduler/framework), client-go, component-helpers and
// volplane's pure packages (internal/volumematch); never upstream's
// volume plugins or storage code (internal/importboundary_test.go).
package scheduler
