// Package podcert issues the certificates of podCertificate projected
// volume sources (certificates.k8s.io/v1 PodCertificateRequest, GA in
// 1.37), the node's half of the protocol:
//
//  1. The first SetUp of a source makes a private key of the source's
//     keyType (RSA3072, RSA4096, ECDSAP256, ECDSAP384, ECDSAP521,
//     ED25519) on the node, and creates a PodCertificateRequest
//     (generateName "req-", owned by the pod) to the source's signerName
//     with the pod, its service account and this node (names and UIDs),
//     maxExpirationSeconds, the user annotations, and an empty PKCS#10
//     request signed by the key as proof of possession. The key never
//     leaves the node except into the pod's tmpfs.
//  2. Until a signer sets the request's Issued condition, Credentials
//     fails with an error wrapping ErrPending and one CertificatePending
//     event is emitted on the pod; the volume manager's FailedMount event
//     repeats the error, and the pod waits in ContainerCreating.
//     A Denied or Failed condition is permanent, with upstream's event
//     (reason Denied or Failed) and message.
//  3. The node watches its own requests (field selector spec.nodeName, as
//     upstream's kubelet; the Node authorizer allows it) and reports the
//     volume through OnChange when its request changes, so the
//     certificate reaches the pod as soon as it is issued.
//  4. At status.beginRefreshAt a timer reports the volume again; the next
//     SetUp makes a new key and request while the pod keeps the current
//     credentials, and switches once the new certificate is issued.
//
// The chain is projected as upstream does: only its PEM blocks, as
// CERTIFICATE blocks without headers. Release forgets a volume's
// credentials; its requests are owned by the pod and are collected with
// it.
//
// Departures: no jitter on refresh; no CertificateOverdueForRefresh or
// CertificateExpired events; a request deleted while pending is made
// again at the next SetUp rather than after upstream's 10 minute wait.
package podcert
