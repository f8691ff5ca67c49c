// Package projected is the projected volume plugin,
// "kubernetes.io/projected": several sources in one directory,
// <root>/pods/<uid>/volumes/kubernetes.io~projected/<name>, always a tmpfs
// (as upstream's, which wraps a memory emptyDir), so the secrets and
// tokens it holds never reach the disk. Every pod's automatic
// kube-api-access-<suffix> volume is one: a serviceAccountToken at
// "token", the kube-root-ca.crt configMap's ca.crt, the namespace from
// the downward API.
//
// Sources, gathered as upstream's collectData does (the errors of all
// sources returned together, in apimachinery's aggregate form
// "[configmap \"a\" not found, secret \"b\" not found]"):
//
//   - configMap, secret: through package objectcache's per-object
//     watches and the configmap/secret packages' MakePayload, with the
//     volume's defaultMode; optional ones may be missing.
//   - downwardAPI: package downwardapi's CollectData.
//   - serviceAccountToken: package token's Manager, a TokenRequest for
//     the pod's service account bound to the pod, with the source's
//     audience and expirationSeconds, renewed at 80% of its life or after
//     24 h, when the manager's timer reports the volume through OnChange.
//   - clusterTrustBundle: by name, or by signerName and labelSelector
//     (nil selects nothing, empty selects all), from objectcache's
//     cluster-wide ClusterTrustBundle watch (certificates.k8s.io/v1, GA
//     in 1.37); the certificates deduplicated and PEM-encoded in a stable
//     order (upstream shuffles them once per kubelet start). A change to
//     any bundle reports every volume that reads bundles.
//   - podCertificate: package podcert's Manager: a key made on the node,
//     a PodCertificateRequest to the source's signer; while no signer
//     answers, SetUp fails (ErrPending) and the pod waits with a
//     CertificatePending event and the volume manager's FailedMount. The
//     key, the chain, or both in one file (key first) at the source's
//     paths; renewed at the certificate's beginRefreshAt.
//
// Token, trust bundle and certificate files get mode 0600 instead of
// defaultMode when the pod runs as a single user (FsUserFrom: every
// container's effective runAsUser the same) or has an fsGroup, and are
// owned by that user; with the fsGroup the writer makes them 0640, as
// upstream. The alpha AtomicWriteVolumeUserFields fields (defaultUser,
// user) are not applied.
package projected
