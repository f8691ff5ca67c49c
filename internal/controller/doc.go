// Package controller is volplane's controller manager: the frame in which
// volplane's own storage controllers run, in `volplane up`, in `volplane
// server`, and against an existing cluster with `volplane server
// --kubeconfig`.
//
// It owns one shared informer factory, an event broadcaster per event
// source (Context.Recorder; each of upstream's controllers has its own,
// and a shared one dropped most events of a burst past its queue of
// 1,000), one Prometheus registry, and leader election through a Lease in kube-system
// (LeaseName): of several servers on one API only the Lease holder runs
// controllers, and when it stops another takes over. A manager that loses
// the Lease (a renewal slower than RenewDeadline on a loaded machine)
// stops its controllers and campaigns again rather than exiting as
// upstream's do: the process also serves the API or runs a node.
// Controllers are
// registered as Descriptors (a name and an InitFunc); package
// controller/all lists them. A controller talks to the API only through
// the client-go objects in Context, so the same code runs in one process
// or across machines.
//
// With MetricsListen it serves the registry at /metrics on a loopback
// address: under MetricsAuth (up's and server's --controller-metrics-listen)
// as kube-controller-manager's secure port serves it, over HTTPS with a
// certificate made in memory, to callers the API authenticates by
// TokenReview and authorizes for get /metrics by SubjectAccessReview
// (401 for a token it rejects, 403 for everyone else, the anonymous
// included); otherwise (csi-controller, the binder bench) as plain HTTP
// to anyone who reaches the address, as CSI sidecars serve theirs. Only
// bearer tokens authenticate: upstream's client certificates
// (--client-ca-file) are not taken.
//
// Every write carries the user agent "volplane-controller-manager", which
// the API server records as the field manager in managedFields: that is
// how a test tells volplane's writes from upstream's.
//
// This package may call client-go, prometheus and leaderelection; it does
// not know any particular controller.
package controller
