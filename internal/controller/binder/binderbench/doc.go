// Package binderbench is `volplane bench binder`: it measures volplane's
// PV controller against a real API and prints figures beside upstream's,
// as issue 13 asks:
//
//   - match: the matching cost per claim at 1k, 10k and 50k volumes, in
//     process (it should stay flat);
//   - exact: the shuffled exact-fit burst (volumes of 1..n Gi and claims
//     sized to them, created at once): claims stranded, claims bound to a
//     larger volume, time to all Bound;
//   - lone: create -> Bound of a single claim with and without the settle
//     window, whose difference is the latency the window adds;
//   - burst: N claims created in a burst against N pre-created volumes of
//     mixed sizes, classes and modes: time to all Bound, binds/s,
//     controller CPU seconds, API writes per bind, and the API's own
//     write rate measured in the same run, hence the write floor;
//   - released: the same burst with N Released volumes present.
//
// Each scenario gets a fresh embedded control plane (etcd, kube-apiserver,
// upstream's non-storage controllers) in this process, or uses the API of
// --kubeconfig. The PV controller runs in a process of its own (`volplane
// bench binder controller`, the same binary) with volplane's controller
// identity, so that its CPU time, read from its /metrics, is its own.
//
// The package may call controlplane, controller and binder; it is not
// used by anything but the bench command.
package binderbench
