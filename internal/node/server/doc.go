// Package server is the node agent's kubelet API: the HTTPS endpoint
// kube-apiserver calls for `kubectl logs`, `kubectl exec`, `kubectl
// attach` and `kubectl port-forward`, and that monitoring scrapes. It
// owns the HTTP side only; the pods and containers come from the agent
// (Provider) and the streams from the runtime (k8s.io/cri-streaming's
// streaming.Runtime). It may call client-go (TokenReview,
// SubjectAccessReview, CSRs), cri-streaming, fsnotify and prometheus,
// and never the kubelet's own packages.
//
// # Use
//
//	m, _ := server.NewServingCertManager(server.ServingCertConfig{
//		Client: nodeClient, NodeName: name, Addresses: addrs, Dir: root + "/pki"})
//	m.Start(); defer m.Stop()
//	s, _ := server.New(server.Config{
//		Listen: ":10250", NodeName: name, GetCertificate: server.GetCertificate(m),
//		ClientCAs: clusterCA, Client: nodeClient, Provider: agent, Streamer: runtime})
//	err := s.Run(ctx)
//
// # Endpoints
//
// As the v1.37 kubelet's, with its status codes and messages:
//
//	GET  /healthz                                     "ok"
//	GET  /metrics                                     Prometheus (Config.Metrics)
//	GET  /pods                                        the node's pods, a v1 PodList
//	GET  /containerLogs/{ns}/{pod}/{container}        follow, previous, tailLines (or
//	                                                  tail), sinceSeconds, sinceTime,
//	                                                  timestamps, limitBytes, stream
//	GET|POST /exec/{ns}/{pod}[/{uid}]/{container}     ?command=...&input=1&output=1&error=1&tty=1
//	GET|POST /attach/{ns}/{pod}[/{uid}]/{container}
//	GET|POST /portForward/{ns}/{pod}[/{uid}]
//
// Exec and attach upgrade to SPDY (remote command protocols v4 down to
// v1; cri-streaming's SPDY server has no v5, which is websocket only) or
// to a websocket. kubectl since 1.30 speaks websocket v5 to kube-apiserver,
// which translates it to SPDY towards a node that does not declare
// ExtendWebSocketsToKubelet, as this one does not; kubectl 1.27 speaks
// SPDY all the way. Other kubelet paths (/stats, /configz, /logs, /run,
// /checkpoint) are not served: 404 once the caller is authorized.
//
// kube-apiserver reaches the server at the Node's address of the first
// type in --kubelet-preferred-address-types and its
// status.daemonEndpoints.kubeletEndpoint.port. It calls logs, exec and
// attach at a loopback address too, but its node proxy
// (/api/v1/nodes/<name>/proxy/...) refuses loopback addresses ("address
// not allowed"), so /pods, /healthz and /metrics through the API need a
// node address that is not loopback.
//
// # Logs
//
// The log file is in the CRI log format, "<RFC3339Nano> stdout|stderr F|P
// <text>", one file per container instance (the runtime's conmon writes
// it). The server parses it itself: P (partial) records join the line
// they begin, separately per stream; text is written without the record
// header, with the line's first timestamp in front under timestamps.
// tailLines counts such joined lines (the kubelet counts file lines, so
// one long line written in parts counts once here: a deliberate
// departure); sinceSeconds/sinceTime leave out lines begun earlier;
// limitBytes counts what is written, timestamps included. Without follow
// the read stops at the size the file had when opened; with follow it
// waits for more (fsnotify, and a look every second) until the Provider
// says the container stopped and the file is read to its end. Lines that
// do not parse are skipped, as by the kubelet.
//
// # Authentication and authorization
//
// Every request, whatever its path, is authenticated and authorized
// before anything else: a caller without a usable identity gets 401
// "Unauthorized", a known caller without the right 403 "Forbidden
// (user=..., verb=..., resource=nodes, subresource(s)=[...])" (the
// kubelet's message, which repeats only what the caller asked); neither
// looks at the node's pods, so neither tells whether a pod exists.
//
//   - Identity: an x509 client certificate chaining to Config.ClientCAs
//     for client auth (user = common name, groups = organizations); else
//     a bearer token, reviewed through a TokenReview to the API server
//     (answers cached 2 minutes, a rejected token 10 seconds, keyed by the
//     token's hash). Nothing else: anonymous requests are refused. A bad
//     client certificate is a 401, not a failed handshake.
//   - Rights: a SubjectAccessReview for verb (GET get, POST create, PUT
//     update, PATCH patch, DELETE delete) on nodes/<subresource> named
//     Config.NodeName, cached 5 minutes when allowed and 30 seconds when
//     not. The subresource is the kubelet's fine-grained mapping:
//     /pods -> pods, /healthz -> healthz, /configz -> configz, each
//     falling back to proxy; /stats -> stats, /metrics -> metrics, /logs
//     -> log; everything else (/containerLogs, /exec, /attach,
//     /portForward, /run) -> proxy.
//
// The node's own credential (system:node:<name>) makes the reviews; the
// Node authorizer lets nodes create TokenReviews and SubjectAccessReviews.
//
// # Trust chain
//
// Two certificates cross on each call from kube-apiserver to this server,
// both ultimately from the cluster CA (<data-dir>/pki/ca.crt):
//
//   - kube-apiserver -> node: kube-apiserver presents its
//     --kubelet-client-certificate (apiserver-kubelet-client.crt, issued
//     by the cluster CA). The server verifies it against ClientCAs (the
//     cluster CA) and asks the API server, by SubjectAccessReview, whether
//     that user (kube-apiserver-kubelet-client, in system:masters) may
//     use nodes/proxy (and so on) on this node.
//   - node -> kube-apiserver: the server presents its serving
//     certificate, which kube-apiserver verifies with
//     --kubelet-certificate-authority (the cluster CA). The node obtains
//     it through a CertificateSigningRequest to the signer
//     kubernetes.io/kubelet-serving, made with its own client credential
//     (system:node:<name> in system:nodes), for subject
//     system:node:<name>, O=system:nodes, DNS and IP names = the node name
//     and its addresses, usages digital signature and server auth. No
//     upstream controller approves such a CSR; volplane's csrapprover
//     (internal/controller/csrapprover) approves it only when the
//     requester is that node and every name is among its Node's
//     addresses, and kube-controller-manager's csrsigning signs it with
//     the cluster CA. NewServingCertManager (client-go's
//     certificate.Manager, as the kubelet's) keeps it in <root>/pki
//     (kubelet-server-current.pem) and renews it before it expires. Until
//     the first one is signed the server has no certificate and every
//     handshake fails.
//   - Other callers (kubectl proxying through the API server, Prometheus
//     with a ServiceAccount token) present bearer tokens, checked by
//     TokenReview, and trust the serving certificate through the cluster
//     CA.
package server
