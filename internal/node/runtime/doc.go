// Package runtime is volplane's built-in container runtime: the CRI
// RuntimeService and ImageManagerService of k8s.io/cri-api, implemented in
// process over runc and conmon the way CRI-O runs containers, plus
// k8s.io/cri-streaming's streaming.Runtime (Streamer) for exec, attach and
// port-forward. The node agent calls nothing else, so a real CRI endpoint
// can replace this package without touching the agent.
//
// # What runs a container
//
// runc builds the namespaces, mounts, cgroup and pivot_root from an OCI
// bundle this package writes (config.json from the CRI config, see
// spec.go); conmon (CRI-O's monitor) runs `runc create`, daemonizes, owns
// the container's stdio, writes its log in the CRI format
// ("<RFC3339Nano> stdout|stderr F|P <line>") to the path the CRI config
// gives (PodSandboxConfig.LogDirectory + ContainerConfig.LogPath), and
// when the container ends writes its exit code to exits/<id> (and an
// "oom" file in the bundle when its cgroup ran out of memory). One conmon
// per container, about 2 MB, outliving the agent. CreateContainer returns
// once runc create is done (so a missing command, an unknown user or an
// impossible mount fails there: the kubelet's CreateContainerError);
// StartContainer is `runc start`.
//
// # The container's view
//
// New mount, PID, UTS and IPC namespaces (host PID or IPC when the pod
// asks), the host's network namespace. The root follows SPEC section 9's
// image rule (image.go): ImagesDir/<name with / and : as _>/rootfs,
// under an overlay whose upper layer is in the bundle so the image is
// never written, with the Entrypoint, Cmd, Env, WorkingDir, User and
// StopSignal of ImagesDir/<name>/config.json applied as CRI runtimes do
// (Command replaces Entrypoint, Args replaces Cmd; neither gives
// ErrNoCommand, "no command specified"); any other name runs on the host
// image: the host's /bin /sbin /usr /lib /lib64 /etc read-only on an
// empty root in the bundle, a private /tmp. Every container gets a fresh
// /proc, a read-only /sys and a minimal /dev (tmpfs with runc's default
// nodes: null, zero, full, random, urandom, tty, plus pts, shm, mqueue);
// a privileged one the host's /dev, all capabilities and all devices.
// CRI mounts are bind mounts with readonly and propagation (PRIVATE ->
// rprivate, HOST_TO_CONTAINER -> rslave, BIDIRECTIONAL -> rshared,
// privileged only), CRI devices device nodes with their cgroup rule;
// env, working dir, run_as_user/run_as_username/run_as_group,
// supplemental groups (resolved in the image's /etc/passwd and
// /etc/group), readonly_rootfs, no_new_privs, capabilities, masked and
// read-only paths, memory limit, CPU shares/quota/period and cpusets as
// cgroup v1 (cgroupfs) settings under the sandbox's cgroup_parent, or
// /volplane/<sandbox> when the kubelet gives none.
//
// # State layout (everything under Config.StateDir)
//
// New makes StateDir a private mount of its own: runc makes the mount
// holding a container's root private in the container's namespace, and
// were that the agent's rshared root directory, which holds the volumes,
// HostToContainer and Bidirectional propagation would silently stop.
// (So the agent makes its root directory rshared before New, not after.)
//
//	runc/                  runc --root: runc's own container state
//	exits/<id>             exit code written by conmon
//	attach/<id>            conmon's attach socket directory (a symlink)
//	sandboxes/<id>.json    sandbox record: its CRI config, created, ready
//	sandboxes/<id>.resolv.conf  the kubelet's DNS config, mounted at
//	                       /etc/resolv.conf in the sandbox's containers
//	containers/<id>/       the bundle: config.json (OCI spec), meta.json
//	                       (container record), rootfs/ (empty root or
//	                       overlay mount), upper/ work/ (overlay layers),
//	                       pid, conmon.pid, ctl and winsz (conmon's
//	                       control fifos), attach (socket), oom
//
// A container's state is read from files, never from a process table:
// exited once exits/<id> exists (its modification time is the finish
// time; reason OOMKilled when the bundle has "oom", Completed for exit
// code 0, Error otherwise), running once the record has a start time,
// created before.
//
// # Restart story
//
// Dropping a Runtime (or kill -9 of the agent) stops nothing: conmon
// keeps watching each container and records its exit. New over the same
// StateDir reads every record and adopts them: same IDs, running ones
// still running, exit codes of those that ended meanwhile kept. Two gaps
// are closed at adoption: a container started by runc whose record has
// no start time yet (the agent died between the two) is marked started
// from runc's state; a container whose conmon is gone without an exit
// file (the machine rebooted, or conmon was killed) is killed if runc
// still runs it and gets exit code 255. A bundle without a record (the
// agent died in CreateContainer before conmon ran) is removed.
//
// # Exec, attach, port-forward
//
// ExecSync and Streamer.Exec run `runc exec`, which takes the
// container's user, environment and working directory from its bundle.
// With a TTY, runc runs in the foreground on the slave of a host
// pseudo-terminal whose master Exec copies (as CRI-O does); runc makes
// the container's terminal and follows resizes through SIGWINCH. (runc
// hands a terminal master over a console socket only to a caller that
// detaches, and a detached exec's exit code would be lost.) A non-zero
// exit is a k8s.io/utils/exec CodeExitError, which remotecommand turns
// into the exit code kubectl shows. Attach joins conmon's attach socket
// (resizes through its ctl fifo); port-forward dials the port on the
// node's loopback, since pods share the node's network.
//
// # Deliberate departures
//
//   - No pause process and no network namespace: pods use the host's
//     network, so a sandbox is a record and a log directory. The PID and
//     IPC namespaces are per container, not shared by the pod.
//   - No image pulls: PullImage resolves the image rule and returns the
//     name; RemoveImage removes nothing (images are the user's
//     directories); ListImages lists ImagesDir only.
//   - No seccomp or AppArmor profiles are applied.
//   - The URL-returning CRI Exec, Attach and PortForward, checkpointing,
//     container events and sandbox stats and metrics answer gRPC
//     Unimplemented; the kubelet API calls Streamer instead of a URL.
//     ContainerStats gives CPU and memory from the cgroup files, no
//     filesystem figures. UpdateContainerResources is `runc update` of
//     memory and CPU.
//   - Privileged containers (and "ALL") get every capability the runtime
//     itself holds, not every capability the kernel knows: runc cannot
//     grant more.
//   - Sandboxes without a cgroup_parent share /volplane as their parent
//     cgroup, which stays once created.
//
// # Files
//
//	runtime.go     Config, New, Runtime, Version, Status
//	store.go       the records and adoption at New
//	sandbox.go     sandboxes (records, DNS, cgroup parent)
//	container.go   create, start, stop, remove
//	status.go      container state from files, status and list
//	conmon.go      conmon's command line and sync pipe, runc calls, exit files
//	spec.go        the OCI spec from the CRI config (pure)
//	image.go       the image rule and ImageManagerService
//	user.go        users, groups and devices
//	exec.go        ExecSync and Streamer.Exec
//	attach.go      Streamer.Attach and PortForward
//	stats.go       ContainerStats from cgroup files, UpdateContainerResources
//	floor.go       RuncFloor, the bench's runtime floor
//	unimplemented.go  ReopenContainerLog and the Unimplemented methods
//
// # Errors
//
// An unknown sandbox or container is gRPC NotFound
// (k8s.io/cri-api/pkg/errors.IsNotFound), except that removing an
// unknown container, and stopping or removing an unknown sandbox, is not
// an error. A bad config is InvalidArgument, an operation in the wrong
// state FailedPrecondition. runc's failures are *hostops.ExecError with
// runc's message; a failed runc create wraps ErrCreate.
//
// This package may call runc and conmon (as processes) and
// internal/hostops (the overlay mounts, the state dir's own mount, the
// mount table).
package runtime
