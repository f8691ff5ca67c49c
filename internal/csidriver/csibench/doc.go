// Package csibench measures a CSI driver the way a node uses it: the
// latency of bringing a volume to a pod (CreateVolume, ControllerPublish
// when the driver has it, NodeStage, NodePublish) for many directory-style
// (Filesystem) volumes and raw block volumes, then the time to take them
// all down again (NodeUnpublish, NodeUnstage, ControllerUnpublish,
// DeleteVolume). It speaks plain CSI over a unix socket, so the same run
// measures volplane's driver or any other.
//
// Calls are made one after another: the figures are latencies, not
// throughput.
package csibench
