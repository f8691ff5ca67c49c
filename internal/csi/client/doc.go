// Package client is volplane's CSI client: the one place where the
// controllers (provisioner, attacher, storage capacity) talk to a CSI
// driver's Identity and Controller services over its unix socket, and
// where the node agent talks to its Node service (node.go: NodeGetInfo,
// NodeGetCapabilities, Stage/Unstage, Publish/Unpublish, GetVolumeStats,
// with the request types NodeStageRequest and NodePublishRequest).
//
// The rest of volplane never touches the generated protobuf structs: it
// builds this package's request types (CreateVolumeRequest,
// PublishRequest, CapacityRequest), whose Validate checks them before a
// call, and reads its result types (Volume, PluginInfo, Capabilities).
// Conversions happen here, at the edge, as Nomad's csimanager does.
//
// Errors keep their gRPC status: every error a call returns wraps the
// driver's status error with %w, so status.Code(err) (or Code here) gives
// the driver's code, and err.Error() quotes it ("rpc error: code =
// ResourceExhausted desc = ..."), which is what events show users. Each
// call runs under Config.Timeout; a driver that does not answer in time
// yields DeadlineExceeded.
//
// Secrets never reach a log: the client logs each call (method, gRPC code,
// duration) at debug level, never a request body, and the request types'
// LogValue leaves their secrets out.
//
// The package may call grpc and the CSI spec's generated code; it knows
// nothing of Kubernetes.
package client
