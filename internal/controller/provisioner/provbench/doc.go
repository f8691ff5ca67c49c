// Package provbench is `volplane bench provision`: it measures how fast a
// one-node `volplane up` provisions volumes through the built-in CSI
// driver (local.csi.volplane.io) and binds them:
//
//   - claims: Claims claims of an Immediate StorageClass of the built-in
//     driver (1Mi each), created by parallel create calls, 100 in flight
//     at a time (createsInFlight, one HTTP/2 connection's streams): claims
//     bound per second (Claims / the time from the first create call until the
//     last claim is Bound) and claim created -> Bound p50/p99, each claim
//     timed from its own create call until a watch sees phase Bound; and
//     what they cost the child (cost.go): API writes per claim by
//     resource and verb (apiserver_request_total) and its CPU per claim
//     (process_cpu_seconds_total), from its /metrics read before the
//     first create call and after the last claim was Bound;
//   - pods: Pods pods, each with a new claim of the default class
//     volplane-local (WaitForFirstConsumer, so the volume is provisioned
//     only once the scheduler picked the node), all created at once: pod
//     created -> Running (every container ready) p50/p99, each from the
//     pod's create call, and the time until all are Running;
//   - teardown: the pods and every claim deleted, until no pod, claim or
//     PV is left in the API and the pool holds no volume.
//
// Create and delete calls that the API answers with a transient error (a
// loaded etcd's "request timed out", 5xx, 429) are retried with backoff,
// a create that finds its object and a delete that finds none counting as
// done; each figure's clock still starts at the first call. A phase that
// fails leaves the figures of those before it printed, the rest marked
// not measured.
//
// The figures are printed beside issue 20's goal (>= 100 claims bound per
// second), marked met or not met, and upstream's rates, labelled as
// references this run did not measure. The bench asserts nothing.
//
// The cluster is podbench's: a child `volplane up` of the same binary on a
// fresh temporary data dir and free loopback ports, stopped with SIGTERM
// and cleaned up with leftovers.Clean (containers, conmon, mounts, the
// pool image's loop device) unless nothing is left; the data dir is
// removed unless Config.Keep.
//
// The package may call podbench (the cluster and table helpers),
// leftovers and client-go; only the bench command uses it.
package provbench
