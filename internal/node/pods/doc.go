// Package pods is the node agent's pod workers and status manager: it
// starts, watches, restarts and stops the containers of the pods bound to
// this node, and writes their status, the way the kubelet's pod workers,
// kuberuntime manager, prober and status manager do. It owns nothing on
// the host itself: it works only through
//
//   - the CRI RuntimeService and ImageManagerService interfaces of
//     k8s.io/cri-api (package runtime implements them in process; a real
//     CRI endpoint could replace it),
//   - volumemanager.Interface for the pod's volumes (see that package for
//     the seam), and
//   - the API through the node's own client (system:node:<name>): it reads
//     the ConfigMaps and Secrets a container's env names, patches
//     pods/status and deletes pods bound to this node.
//
// It writes only under <RootDir>/pods/<uid> (etc-hosts, containers/<name>/
// <restart> termination-message files) and creates the log directories
// <LogDir>/pods/<ns>_<pod>_<uid>/<container>/ that the runtime writes
// <restart>.log into.
//
// # Using it
//
//	w, err := pods.New(pods.Config{NodeName, RootDir, LogDir, Client, Recorder,
//	        Runtime, Images, Volumes, NodeIP, APIServerHost, APIServerPort, PodsSynced})
//	volumeManager's Config.Pods = w          // w is a volumemanager.PodStates
//	informer add/update handlers -> w.Update(pod)   (pods with spec.nodeName = this node)
//	informer delete handler      -> w.Delete(pod)
//	go w.Run(ctx)
//
// New lists the runtime's sandboxes once, so that ContainersTerminated
// says false for a pod found running until its worker decides: the volume
// manager, reconstructing after a restart, never unmounts under a running
// container. Stopping Run (or killing the agent) stops nothing: containers
// keep running under their monitors and the next agent adopts them.
//
// The kubelet API reads ContainerID, ContainerLog / ContainerLogPath,
// PodSandboxID, Pod and RunningPods.
//
// # One worker per pod
//
// Each pod has one goroutine, woken by Update/Delete, by the relist (every
// RelistPeriod the runtime's containers are listed once and the worker of
// each pod whose containers changed state is woken, as upstream's PLEG), by
// a probe whose result changed, or by its own timer (backoff end, active
// deadline, 10 s resync). A sync reads the pod's sandboxes and containers
// from the runtime (by the io.kubernetes.pod.uid label) and decides from
// that alone, so nothing is remembered that a restart could lose except
// the crash-loop backoff and the probe results:
//
//	running pod:   WaitForAttachAndMount (a *VolumeAttachLimitExceededError
//	               rejects the pod as the kubelet's rejectPod: a Warning
//	               event VolumeAttachmentLimitExceeded with the error's
//	               text, then it is stopped as finished, Failed with that
//	               reason and "Pod was rejected: <text>", no container
//	               started) -> RunPodSandbox (host network; a
//	               dead sandbox is replaced with the next attempt and its
//	               containers stopped) -> init containers one at a time in
//	               order (sidecars, restartPolicy Always, keep running and
//	               count as done once started) -> every regular container
//	               not running that should run -> status
//	finished:      (every regular container exited for good, a failed init
//	               container under Never, the API's phase terminal, or
//	               activeDeadlineSeconds passed: DeadlineExceeded) stop
//	               containers and sandbox, status Succeeded/Failed; the
//	               containers are kept (logs) and ContainersTerminated is
//	               true, so the volume manager may unmount the volumes
//	deleted:       (deletionTimestamp, or the object gone) stop containers
//	               within the grace period (preStop first, then
//	               StopContainer with what is left: SIGTERM then SIGKILL;
//	               regular containers together, then sidecars in reverse
//	               order) -> StopPodSandbox -> ContainersTerminated true ->
//	               WaitForUnmount -> remove <root>/pods/<uid> (only if no
//	               mount is beneath it) -> RemovePodSandbox -> delete the
//	               pod object with grace period 0 and a UID precondition
//
// Container creates and starts (runc create under conmon, runc start)
// run at most Config.MaxParallelStarts at once (default twice the cores):
// they are CPU work, and 100 pods started together would otherwise share
// the cores and all come up at the end, where a bound brings the first
// ones up first in the same total time. Everything else a pod waits for
// (its volumes, the API) is not bounded.
//
// Starting a container: ImageStatus (an image absent and not pullable is a
// CreateContainerError: there is no registry), the configuration
// (command/args with $(VAR) expansion, env, mounts, devices, security
// context, resources; an error here is CreateContainerConfigError),
// CreateContainer (CreateContainerError), StartContainer
// (RunContainerError), then the postStart hook (a failure kills the
// container). Events are upstream's: Pulled "Container image "x" already
// present on machine", Created "Container created", Started "Container
// started", Killing "Stopping container x", BackOff "Back-off restarting
// failed container x in pod p_ns(uid)", Unhealthy "Liveness probe failed:
// ...", Failed "Error: ...", FailedMount "Unable to attach or mount
// volumes: ...", FailedPostStartHook, FailedPreStopHook, DeadlineExceeded,
// VolumeAttachmentLimitExceeded.
//
// Restarts follow restartPolicy (Always, OnFailure, Never; a container's
// own restartPolicy wins; sidecars always restart) with upstream's
// crash-loop backoff: the first restart at once, then 10 s doubling to
// 5 min from when the last instance finished, forgotten once an instance
// ran for 10 min. Each instance keeps its restart count in the
// io.kubernetes.container.restartCount annotation and its metadata
// attempt; the newest two instances of a container are kept (current and
// previous, for logs --previous), older ones are removed with their logs.
//
// Probes (exec through Runtime.ExecSync, httpGet, tcpSocket, grpc) run one
// goroutine per container instance and probe, against the node's address
// (the pod's). A liveness or startup probe that reaches its failure
// threshold gets the instance killed ("Container x failed liveness probe,
// will be restarted") and replaced under the restart policy.
//
// # Labels, and adoption after a restart
//
// Sandboxes carry io.kubernetes.pod.{name,namespace,uid} and the pod's
// labels; containers the same plus io.kubernetes.container.name, and the
// annotations io.kubernetes.container.{restartCount,
// terminationMessagePath,terminationMessagePolicy} and
// io.kubernetes.pod.terminationGracePeriod, upstream's names. A restarted
// agent therefore finds the same sandbox and container IDs: a running
// container is never started twice and no restart is counted; readiness
// and started are taken from the pod's last status for the same container
// ID, as upstream does, so an adopted pod stays Ready. A sandbox whose pod
// the synced informer does not know is an orphan (the pod was deleted
// while the agent was down): it is stopped and removed like a deleted pod.
//
// # Status
//
// computeStatus is upstream's generateAPIPodStatus: container statuses from
// the newest instance (state, restartCount, containerID volplane://<id>,
// image, imageID) with lastState from the one before; a container that will
// start again shows the reason its last start failed or is held back
// (CrashLoopBackOff, CreateContainerConfigError, CreateContainerError,
// RunContainerError), else ContainerCreating or, with init containers,
// PodInitializing; terminated reasons Completed/Error/OOMKilled come from
// the runtime, the message from the termination-log file (or the log's
// tail under FallbackToLogsOnError); once the pod is stopped for good, a
// container that shows no end (it never ran) is shown terminated with
// ContainerStatusUnknown and exit code 137, as the status manager's
// TerminatePod. The phase is upstream's getPhase, and
// the conditions PodReadyToStartContainers, Initialized, ContainersReady,
// Ready (with readiness gates) and PodScheduled carry upstream's reasons
// and messages and keep their lastTransitionTime while unchanged. podIP
// and hostIP are the node's address. The status manager writes a
// strategic merge patch of pods/status, with metadata.uid as precondition,
// only when the status changed; a failed write is retried by the next sync
// a second later.
//
// # Departures from upstream
//
//   - Every pod uses the host's network whatever spec.hostNetwork says;
//     podIP is the node's address.
//   - Updating a running pod's container image does not restart the
//     container (upstream restarts on a change of the container's hash).
//   - A deletion's shorter grace period arriving while containers are
//     already stopping does not cut the running stop short.
//   - Service links of Services other than kubernetes are not injected.
//   - A pod rejected for its volume attachment limit is not counted in a
//     kubelet_admission_rejections_total metric: the agent keeps no
//     admission metrics.
//
// # Environment
//
// KUBERNETES_SERVICE_HOST/PORT (and the KUBERNETES_PORT_* family) point at
// the API's real address: pods use the host's network and there is no
// kube-proxy. env valueFrom fieldRef (metadata.name/namespace/uid/labels/
// annotations, spec.nodeName, spec.serviceAccountName, status.podIP(s),
// status.hostIP(s)), resourceFieldRef (an unset limit is the node's
// capacity), configMapKeyRef and secretKeyRef (optional honoured), envFrom
// with prefix; env wins over envFrom, later over earlier.
//
// # Mounts
//
// Each volumeMount is a bind mount of the volume's HostPath from
// Volumes.PodVolumes; readOnly when the mount or the volume says so;
// mountPropagation None/HostToContainer/Bidirectional (privileged only). A
// subPath, or a subPathExpr expanded from the container's environment
// (absolute paths and ".." refused), goes only through
// Volumes.PrepareSubPath: the path inside the volume is never joined here.
// volumeDevices become devices of the volume's DevicePath. Every container
// also gets the pod's managed /etc/hosts (the node's, plus hostAliases)
// unless it mounts one, and its termination-message file.
package pods
