// Package schedbench is `volplane bench scheduler`: how fast the embedded
// scheduler, with volplane's volume plugins, places pods that each need a
// new delayed-binding claim, beside the same pods without volumes, in one
// run on one cluster.
//
// It starts `volplane up` as a child process (podbench.StartCluster) on a
// temporary data dir and free loopback ports; the child's own node takes
// no bench pod (the pods select the bench nodes by label). The bench then
// makes Node objects only (no kubelet behind them): each gets a Ready
// status and a Lease that the bench keeps fresh, since the API server
// taints a new Node not-ready until its Ready condition is seen and the
// node lifecycle controller marks a silent one unreachable; the bench
// waits until no bench node carries a taint. Each node gets local PVs
// pinned to it by kubernetes.io/hostname, of a WaitForFirstConsumer class
// with no provisioner. Then, for each shape, the pods are created at once
// from parallel workers and a watch notes when each pod's spec.nodeName
// is set (the bind); the pods never run. Pods scheduled per second is the
// number of pods over the time from the first create to the last bind.
// The no-volume pods are force-deleted before the volume pods come, so
// both shapes meet the same empty nodes. For the volume shape each pod's
// claim is created (untimed) just before the pods; the scheduler chooses
// node and PV together, writes the PV's claimRef, and binds the pod once
// the PV controller has bound the claim, so that time is in the figure.
//
// The volume shape's time is split into its phases (phases.go), from
// informers on volumes and claims: create -> the volume's claimRef seen
// (scheduling cycle, nominatedNodeName patch, PreBind's volume write),
// claimRef -> claim bound (the PV controller's volume status and claim
// writes: volumeName and the bind-completed annotation, what PreBind
// waits for), bound -> spec.nodeName (PreBind noticing, the binding; the
// claim's status write, phase Bound, races it). Each shape's API writes
// per pod are counted from the API server's apiserver_request_total
// (podbench.ReadAPIMetrics; the bench's node heartbeats left out) and
// printed by kind: a volume pod costs about ten (claim and pod creates,
// nominatedNodeName, PV claimRef, PV status, PVC spec, PVC status and
// its Unused condition, binding, event) where a plain pod costs three
// (create, binding, event), all of upstream's shape; on a loaded 2-core
// machine the API server's write cost, not the plugins, bounds the ratio,
// and the bench prints the share the writes alone allow, and the same
// share by up's CPU per pod with how busy the machine was.
//
// Upstream's scheduler_perf figures are printed as references, not
// measured here (other machines, other cluster sizes, no delayed binding
// in its volume cases).
//
// The package may call client-go and podbench's cluster helpers; it
// never imports upstream's scheduler or storage code.
package schedbench
