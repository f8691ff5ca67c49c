// Package registrar is what upstream's node-driver-registrar sidecar does,
// in process: it serves the kubelet plugin-registration API
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1, service Registration)
// for one CSI driver on <registration dir>/<driver>-reg.sock, so that a
// node agent's plugin watcher, volplane's or a kubelet's, finds the socket
// and registers the driver.
//
// GetInfo answers {type "CSIPlugin", name, endpoint, supported versions}.
// The endpoint is the driver's socket path as the node agent sees it (what
// node-driver-registrar takes as --kubelet-registration-path), a plain
// absolute path as upstream sends it. NotifyRegistrationStatus is logged;
// a refusal (plugin_registered false) is logged as an error with the
// agent's reason. node-driver-registrar exits on a refusal so that its
// pod restarts; here the socket stays and the agent tries again when it
// rescans.
//
// The socket exists from Listen until Serve returns: Serve removes it when
// its context is done, which is how the agent learns the driver is gone.
// A socket file left by a process that died is replaced; one that still
// answers belongs to a live registrar and is an error.
//
// The package calls grpc and the registration API's generated code; it
// knows neither the CSI driver nor Kubernetes objects.
package registrar
