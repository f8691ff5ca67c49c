// Package node holds the node agent, `volplane node` (and the agent that
// `volplane up` runs for its own machine): the kubelet's storage half and
// a minimal pod runtime, one package per role.
//
//	agent/          the Node object, its Lease and status, identity, the pod
//	                workers that start and stop containers (the caller of
//	                the seams below)
//	volumemanager/  desired and actual state of the world, populator,
//	                reconciler, reconstruction: puts volumes into pods
//	plugins/        the volume plugins the volume manager drives, one
//	                package each, behind plugins.Plugin
//	csidrivers/     the CSI drivers registered on this node: registration
//	                adds them, the CSI plugin looks their endpoints up
//	pluginwatcher/  CSI plugin registration: plugins_registry/ sockets,
//	                the CSINode, the Node's nodeid annotation and labels
//	subpath/        subPath resolved through file descriptors, never
//	                escaping its volume
//	eviction/       evicts pods whose disk emptyDir outgrew its sizeLimit
//	                where no quota enforces it
//	pods/           the pod workers and the status manager: containers
//	                started, probed, restarted and stopped as upstream
//	runtime/        the built-in container runtime behind the CRI
//	                RuntimeService interface: runc from an OCI bundle,
//	                watched by conmon
//	server/         the kubelet API (logs, exec, attach) on HTTPS
//	podbench/       `volplane bench pods`
//	leftovers/      ends what a stopped agent leaves running on purpose,
//	                for benches and tests
//	localpv/        the local static provisioner: mount points under
//	                --local-discovery-dir become local PVs of this node,
//	                scrubbed and made again when released (its own
//	                component and identity, beside the agent)
//
// Two seams join them, each written down in one place:
//
//   - agent <-> volumemanager: volumemanager.Interface (WaitForAttachAndMount,
//     PodVolumes, PrepareSubPath, WaitForUnmount) and the PodStates the
//     agent gives the volume manager. See package volumemanager.
//   - agent <-> runtime: the CRI RuntimeService and ImageManagerService
//     interfaces of k8s.io/cri-api, called in process, plus
//     k8s.io/cri-streaming's streaming.Runtime for exec and attach, so a
//     real CRI endpoint can replace the built-in runtime without touching
//     the agent.
//
// Package node itself holds no code.
package node
