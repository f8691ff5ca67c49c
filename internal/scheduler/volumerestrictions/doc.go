// Package volumerestrictions is volplane's restrictions plugin for the
// embedded kube-scheduler, registered as "VolplaneVolumeRestrictions" at
// the extension points upstream's VolumeRestrictions occupies (PreFilter
// with the AddPod/RemovePod extensions, Filter; turned off).
//
// ReadWriteOncePod: a claim with that access mode is used by at most one
// pod in the cluster. PreFilter counts the scheduled pods that already
// use the pod's ReadWriteOncePod claims (the scheduler snapshot's
// StorageInfos); Filter rejects every node while that count is above
// zero, with upstream's reason "node(s) unavailable due to
// PersistentVolumeClaim with ReadWriteOncePod access mode already in-use
// by another pod" and status Unschedulable (not Unresolvable), so
// preemption may evict the pod that holds the claim: AddPod and RemovePod
// keep the count in step with the pods preemption adds and removes.
// A pod without ReadWriteOncePod claims in use skips Filter. A missing
// claim leaves the pod UnschedulableAndUnresolvable until it appears.
//
// Departure from upstream: upstream's plugin also rejects nodes where
// another pod mounts the same GCE PD, AWS EBS volume, RBD image or iSCSI
// IQN read-write ("node(s) had no available disk"). Those are in-tree
// drivers volplane does not have (a pod with such a volume never gets it
// mounted here), so the rule is not built and that reason never appears.
//
// rwop.go holds the pure functions, with table tests. The package may
// call client-go listers and the scheduler framework interfaces; never
// upstream's volume plugins or storage code.
package volumerestrictions
