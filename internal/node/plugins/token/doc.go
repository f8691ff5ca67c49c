// Package token is the node's service account token manager, what the
// projected plugin's serviceAccountToken sources (and so every pod's
// kube-api-access-* volume) read.
//
// A token is requested through the TokenRequest API with the node's own
// identity (CreateToken on the pod's service account, "default" when the
// pod names none), bound to the pod (boundObjectRef Pod name and UID), with
// the source's audience and expirationSeconds. The Node authorizer allows
// a node exactly this for the service accounts of its pods.
//
// Tokens are cached per namespace, service account, audience, expiry and
// pod, and shared by the volumes that ask for the same one. A token is
// renewed once 80% of its life (from the moment it was obtained to its
// status.expirationTimestamp) has passed, or after 24 h, whichever comes
// first, as upstream's kubelet does (without its jitter). Renewal is not
// left to a periodic resync: when a token falls due, a timer calls the
// OnChange callbacks with the name of every volume holding it, the volume
// manager calls SetUp again, and SetUp's Token call gets the new token.
// Release drops the volume's interest; a token no volume holds is
// forgotten and its timer stopped.
//
// Tokens are never logged.
package token
