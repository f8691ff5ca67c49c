package pods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
)

// Container waiting reasons, upstream's.
const (
	reasonContainerCreating   = "ContainerCreating"
	reasonPodInitializing     = "PodInitializing"
	reasonCrashLoopBackOff    = "CrashLoopBackOff"
	reasonCreateConfigError   = "CreateContainerConfigError"
	reasonCreateError         = "CreateContainerError"
	reasonRunError            = "RunContainerError"
	reasonPostStartHookError  = "PostStartHookError"
	eventPulled               = "Pulled"
	eventCreated              = "Created"
	eventStarted              = "Started"
	eventFailed               = "Failed"
	eventKilling              = "Killing"
	eventBackOff              = "BackOff"
	eventUnhealthy            = "Unhealthy"
	eventFailedMount          = "FailedMount"
	eventFailedPostStartHook  = "FailedPostStartHook"
	eventFailedPreStopHook    = "FailedPreStopHook"
	eventFailedCreateSandbox  = "FailedCreatePodSandBox"
	eventDeadlineExceeded     = "DeadlineExceeded"
	reasonEvicted             = "Evicted"
	deadlineExceededMessage   = "Pod was active on the node longer than the specified deadline"
	defaultTerminationLogPath = "/dev/termination-log"
)

// startError is a failed start: the waiting reason the container shows
// and its message.
type startError struct {
	Reason, Message string
}

func (e *startError) Error() string { return e.Reason + ": " + e.Message }

// errMessage is the message of a CRI error without its gRPC decoration.
func errMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// ensurePodDirs creates the pod directory, its containers/ directory and
// the managed /etc/hosts (the node's, with the pod's hostAliases).
func (w *Workers) ensurePodDirs(pod *corev1.Pod) error {
	dir := w.podDir(pod.UID)
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o750); err != nil {
		return fmt.Errorf("creating the pod directory: %w", err)
	}
	hosts := filepath.Join(dir, "etc-hosts")
	if _, err := os.Stat(hosts); err == nil {
		return nil
	}
	content, err := os.ReadFile("/etc/hosts")
	if err != nil {
		content = []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (host network).\n")
	b.Write(content)
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	if err := os.WriteFile(hosts, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing the pod's hosts file: %w", err)
	}
	return nil
}

// startContainer pulls (checks) the image, creates and starts one
// container instance and runs its postStart hook, with upstream's events.
// A failure comes back as a *startError.
func (pw *podWorker) startContainer(ctx context.Context, pod *corev1.Pod, sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, c *corev1.Container, restart int32) error {
	w := pw.w
	ref := containerRef(pod, c)
	image := normalizeImage(c.Image)

	// Step 1: the image. There is no registry: an image is on the
	// machine or it is not.
	st, err := w.cfg.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}, false)
	if err == nil && st.GetImage() == nil {
		_, err = w.cfg.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}, nil, sbCfg)
		if err == nil {
			st, err = w.cfg.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image}, false)
		}
		if err == nil && st.GetImage() == nil {
			err = fmt.Errorf("image %q not found", c.Image)
		}
	}
	if err != nil {
		msg := errMessage(err)
		w.cfg.Recorder.Eventf(ref, corev1.EventTypeWarning, eventFailed, "Error: %s", msg)
		return &startError{reasonCreateError, msg}
	}
	w.cfg.Recorder.Eventf(ref, corev1.EventTypeNormal, eventPulled, "Container image %q already present on machine", c.Image)

	// Step 2: the configuration and the container.
	cfg, err := pw.containerConfig(ctx, pod, c, restart, image, st.GetImage())
	if err != nil {
		msg := errMessage(err)
		w.cfg.Recorder.Eventf(ref, corev1.EventTypeWarning, eventFailed, "Error: %s", msg)
		return &startError{reasonCreateConfigError, msg}
	}
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, c.Name), 0o755); err != nil {
		return &startError{reasonCreateError, err.Error()}
	}
	// Steps 2 (the create) and 3, at most MaxParallelStarts at once.
	select {
	case w.starts <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	// A runtime call that hangs must not hold its token for good and
	// stall every start on the node: the kubelet's CRI deadline
	// (--runtime-request-timeout, 2 min) bounds it.
	sctx, cancel := context.WithTimeout(ctx, runtimeRequestTimeout)
	id, err := pw.createAndStart(sctx, ref, sandboxID, cfg, sbCfg)
	cancel()
	<-w.starts
	if err != nil {
		return err
	}

	// Step 4: the postStart hook; a failure kills the container.
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if msg, err := pw.runHandler(ctx, pod, c, id, c.Lifecycle.PostStart, 0); err != nil {
			logging.FromContext(ctx).Warn("postStart hook failed", "container", c.Name, "err", err)
			// The message stays out of the event: it may hold secrets.
			w.cfg.Recorder.Eventf(ref, corev1.EventTypeWarning, eventFailedPostStartHook, "PostStartHook failed")
			pw.killContainer(ctx, pod, c, id, gracePeriod(pod, c), "FailedPostStartHook", "")
			return &startError{reasonPostStartHookError, msg}
		}
	}
	return nil
}

// runtimeRequestTimeout is the kubelet's default --runtime-request-timeout.
const runtimeRequestTimeout = 2 * time.Minute

// createAndStart creates the container (Step 2's end) and starts it
// (Step 3), with upstream's events, and returns its ID. The caller holds
// a token of Workers.starts. A failure comes back as a *startError.
func (pw *podWorker) createAndStart(ctx context.Context, ref *corev1.ObjectReference, sandboxID string, cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	w := pw.w
	name := cfg.GetMetadata().GetName()
	id, err := w.cfg.Runtime.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		msg := errMessage(err)
		w.cfg.Recorder.Eventf(ref, corev1.EventTypeWarning, eventFailed, "Error: %s", msg)
		return "", &startError{reasonCreateError, msg}
	}
	w.cfg.Recorder.Eventf(ref, corev1.EventTypeNormal, eventCreated, "Container created")
	logging.FromContext(ctx).Debug("pod timeline: container created", "container", name, "id", id)

	// Step 3: start it.
	if err := w.cfg.Runtime.StartContainer(ctx, id); err != nil {
		msg := errMessage(err)
		w.cfg.Recorder.Eventf(ref, corev1.EventTypeWarning, eventFailed, "Error: %s", msg)
		return "", &startError{reasonRunError, msg}
	}
	w.cfg.Recorder.Eventf(ref, corev1.EventTypeNormal, eventStarted, "Container started")
	logging.FromContext(ctx).Debug("pod timeline: container started", "container", name)
	return id, nil
}

// containerConfig builds the CRI configuration of one container instance
// from its spec.
func (pw *podWorker) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, restart int32, image string, img *runtimeapi.Image) (*runtimeapi.ContainerConfig, error) {
	w := pw.w
	sc := securityContext(pod, c)
	if err := verifyRunAsNonRoot(pod, c, sc, img); err != nil {
		return nil, err
	}
	cpu, mem := nodeCapacity()
	env, err := makeEnv(ctx, envInput{
		Pod: pod, Container: c, NodeIP: w.cfg.NodeIP,
		APIHost: w.cfg.APIServerHost, APIPort: w.cfg.APIServerPort,
		NodeCPU: cpu, NodeMemory: mem,
		Source: clientEnvSource{w.cfg.Client},
	})
	if err != nil {
		return nil, err
	}
	volumes := w.cfg.Volumes.PodVolumes(pod.UID)
	termLog := ""
	if c.TerminationMessagePath != "" {
		termLog = w.termLogHostPath(pod.UID, c.Name, restart)
		if err := os.MkdirAll(filepath.Dir(termLog), 0o750); err != nil {
			return nil, err
		}
		if err := os.WriteFile(termLog, nil, 0o666); err != nil {
			return nil, err
		}
		// WriteFile's mode is masked by the umask; the container's
		// user, whoever it is, must be able to write its message.
		if err := os.Chmod(termLog, 0o666); err != nil {
			return nil, err
		}
	}
	mounts, err := makeMounts(ctx, mountInput{
		Pod: pod, Container: c, Env: env, Volumes: volumes,
		PrepareSubPath: w.cfg.Volumes.PrepareSubPath,
		Privileged:     sc.Privileged,
		EtcHosts:       filepath.Join(w.podDir(pod.UID), "etc-hosts"),
		TermLog:        termLog,
	})
	if err != nil {
		return nil, err
	}
	devices, err := makeDevices(c, volumes)
	if err != nil {
		return nil, err
	}
	lookup := envLookup(env)
	var command, args []string
	for _, s := range c.Command {
		command = append(command, expand(s, lookup))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, lookup))
	}
	criEnv := make([]*runtimeapi.KeyValue, 0, len(env))
	for _, e := range env {
		criEnv = append(criEnv, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(restart)},
		Image:       &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image},
		Command:     command,
		Args:        args,
		WorkingDir:  c.WorkingDir,
		Envs:        criEnv,
		Mounts:      mounts,
		Devices:     devices,
		Labels:      containerLabels(pod, c),
		Annotations: containerAnnotations(pod, c, restart),
		LogPath:     containerLogPath(c.Name, restart),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(pod, c),
			SecurityContext: sc,
		},
	}, nil
}

// normalizeImage adds ":latest" to an image without tag or digest, as
// the kubelet does before asking the runtime.
func normalizeImage(image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if strings.Contains(last, ":") {
		return image
	}
	return image + ":latest"
}

// containerRef is the event reference of a container: the pod with the
// field path of the container, as upstream's.
func containerRef(pod *corev1.Pod, c *corev1.Container) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       fieldPath(pod, c.Name),
	}
}

// fieldPath is spec.containers{name} or spec.initContainers{name}.
func fieldPath(pod *corev1.Pod, name string) string {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return "spec.initContainers{" + name + "}"
		}
	}
	return "spec.containers{" + name + "}"
}
