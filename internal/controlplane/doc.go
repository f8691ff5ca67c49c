// Package controlplane is the seam between upstream Kubernetes and
// volplane: it runs the upstream substrate in this process, from
// upstream's own options, with no patches, no child processes and no
// downloads. Everything here is wiring: flags derived from one Config.
//
//   - etcd: embedded (go.etcd.io/etcd/server/v3/embed, the version
//     k8s.io/kubernetes v1.37 uses) under <data-dir>/etcd, serving only on
//     unix sockets in <data-dir>/run; or external with --etcd-servers.
//     etcd remembers the fingerprint of the CA that first used it
//     (/volplane/pki/ca-sha256), and a data dir whose PKI does not match
//     its etcd is refused before anything starts. The embedded etcd logs
//     at its own default level, info, whatever -v says: its debug records
//     hold the requests it applies, Secret values among them.
//   - PKI under <data-dir>/pki, made whole on first start: a CA, the
//     serving certificate (reissued when --listen changes), the service
//     account key pair, the API server's kubelet client certificate, and
//     one bearer token per component (tokens.csv), each its own user with
//     only the rights RBAC grants it.
//   - kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app) on the
//     --listen address, with Node and RBAC authorization, every built-in
//     admission plugin including the storage ones.
//   - kube-controller-manager (cmd/kube-controller-manager/app) with its
//     non-storage controllers only, serving nothing on the network.
//   - kube-scheduler (cmd/kube-scheduler/app) with upstream's volume
//     plugins off and volplane's in their place (scheduler.go). One
//     departure from its defaults: its API client may send 2000 queries
//     per second (burst 4000) instead of 50 (100), as volplane's
//     embedded controllers may; it talks only to volplane's own API
//     server, which priority and fairness protects, and at 50 a pod with
//     a delayed-binding claim (three scheduler writes: nominatedNodeName,
//     the volume's claimRef, the binding) was held to a third of the
//     rate of a pod without volumes (one write) by the client limit alone.
//
// With leader election (`server`, where several may share one etcd), the
// embedded kube-controller-manager and kube-scheduler each hold their own
// Lease, and each ends when it loses it, as upstream's components do
// (kube-controller-manager returns rather than exiting the process, by
// the feature gate below); either ending is an error of the control
// plane, on which `server` stops in order. Both rebuild all their state
// from the API, so a supervisor restarting `server` (systemd's
// Restart=always) is the recovery, as it is upstream. volplane's own
// controllers (internal/controller) campaign again instead.
//
// kube-controller-manager's storage controllers are turned off, by their
// upstream names in v1.37 (aliases in brackets), each with what takes its
// place in volplane, or why nothing needs to:
//
//	persistentvolume-binder-controller (persistentvolume-binder)
//	    controller/binder: binding, in-process provisioning, reclaim,
//	    recycle; CSI provisioning through controller/provisioner.
//	persistentvolume-attach-detach-controller (attachdetach)
//	    controller/attachdetach creates and deletes VolumeAttachments;
//	    controller/attacher carries them out for CSI drivers (the
//	    CSI/attach-detach work of issue 20).
//	persistentvolume-expander-controller (persistentvolume-expander)
//	    none yet: volplane has no resizer, so a claim whose request grows
//	    is not expanded. It is the resizer named in SPEC section 3, still
//	    to be built.
//	persistentvolumeclaim-protection-controller (pvc-protection)
//	    controller/protection (pvc-protection).
//	persistentvolume-protection-controller (pv-protection)
//	    controller/protection (pv-protection).
//	ephemeral-volume-controller (ephemeral-volume)
//	    controller/ephemeral.
//	volumeattributesclass-protection-controller
//	    controller/protection (volumeattributesclass-protection).
//	selinux-warning-controller
//	    none needed: it only warns about pods whose SELinux mount labels
//	    conflict on a shared volume, and volplane's node agent applies no
//	    SELinux labels (no SELinux mount option is used), so no conflict
//	    can arise.
//
// Cloud controllers are not part of kube-controller-manager in this
// release; node-ipam-controller is off as volplane allocates no pod CIDRs.
//
// <data-dir>/kubeconfig (context "volplane", the admin's bearer token and
// the CA) is written only once /readyz passes, and removed at the start
// of every run until then.
package controlplane
