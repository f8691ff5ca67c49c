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
//     its etcd is refused before anything starts.
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
//
// kube-controller-manager's storage controllers are turned off, by their
// upstream names in v1.37 (aliases in brackets):
//
//	persistentvolume-binder-controller          (persistentvolume-binder)
//	persistentvolume-attach-detach-controller   (attachdetach)
//	persistentvolume-expander-controller        (persistentvolume-expander)
//	persistentvolumeclaim-protection-controller (pvc-protection)
//	persistentvolume-protection-controller      (pv-protection)
//	ephemeral-volume-controller                 (ephemeral-volume)
//	volumeattributesclass-protection-controller
//	selinux-warning-controller
//
// volplane's own controllers (package controller) take their place.
// Cloud controllers are not part of kube-controller-manager in this
// release; node-ipam-controller is off as volplane allocates no pod CIDRs.
//
// <data-dir>/kubeconfig (context "volplane", the admin's bearer token and
// the CA) is written only once /readyz passes, and removed at the start
// of every run until then.
package controlplane
