// Package csrapprover is volplane's approver of kubelet serving
// certificates: CertificateSigningRequests to the signer
// kubernetes.io/kubelet-serving, which node agents make (through
// client-go's certificate manager, see internal/node/server) for the
// certificate their kubelet API serves with.
//
// Upstream never approves these automatically: kube-controller-manager's
// csrapproving approves only node client certificates, and leaves serving
// certificates to the cluster's installer, because a node could otherwise
// ask for names that are not its own. volplane approves one only when the
// names are the node's own name and addresses (see decide):
//
//   - the requester is system:node:<name> in system:nodes (the node's own
//     credential, never a bootstrap token);
//   - the subject is exactly CN=system:node:<name>, O=system:nodes;
//   - the usages are digital signature and server auth (with key
//     encipherment for RSA keys), as the signer requires;
//   - every DNS name and IP it asks for is the node's name or among the
//     addresses of the Node <name> (Hostname, InternalDNS, ExternalDNS
//     as DNS names; InternalIP, ExternalIP and an IP-valued Hostname as
//     IPs).
//
// Those addresses are what the node reports for itself: NodeRestriction
// lets a node write its own status.addresses freely, so a node that
// first adds an address (an ExternalIP 10.9.9.9, an InternalDNS naming
// another node) gets a CA-signed serving certificate for it (seen by hand
// with a node's own credential: Approved,Issued). That is upstream's
// reason for approving none; a node that can also intercept traffic to
// that address can then pose as that kubelet to kube-apiserver. Refusing
// names another Node reports would not close it for IPs: several agents
// on one machine share its address.
//
// Anything else is left pending, neither approved nor denied, and looked
// at again whenever the CSR or that Node changes (a node may ask before
// it has reported its addresses). The approval is the Approved condition
// with reason AutoApproved, written through the approval subresource;
// kube-controller-manager's csrsigning then signs it with the cluster CA,
// and kube-apiserver trusts it through --kubelet-certificate-authority.
//
// Rights (volplane's controller ClusterRole): get/list/watch
// certificatesigningrequests, update certificatesigningrequests/approval,
// approve on signers/kubernetes.io/kubelet-serving, get/list/watch nodes.
//
// This package may call client-go and the controller manager frame.
package csrapprover
