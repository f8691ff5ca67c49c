package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"volplane/internal/logging"
)

// containerLogs answers /containerLogs/{namespace}/{pod}/{container}.
// Status codes and messages are the kubelet's: 400 for a query that does
// not decode and for a container with no log to show, 422 for invalid
// options, 404 for an unknown pod or container name.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if errors.Is(err, errInvalidLogOptions) {
		http.Error(w, `{"message": "Invalid request."}`, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		http.Error(w, `{"message": "Unable to decode query."}`, http.StatusBadRequest)
		return
	}
	pod, ok := s.cfg.Provider.Pod(ns, name)
	if !ok {
		http.Error(w, fmt.Sprintf("pod %q does not exist", name), http.StatusNotFound)
		return
	}
	if !hasContainer(pod, container) {
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", container, name), http.StatusNotFound)
		return
	}
	lf, err := s.cfg.Provider.ContainerLog(ctx, pod, container, opts.previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flush := func() { _ = http.NewResponseController(w).Flush() }
	out := &countingWriter{w: w}
	err = readLogs(ctx, lf.Path, opts, out, flush, func(ctx context.Context) (bool, error) {
		return s.cfg.Provider.ContainerRunning(ctx, lf.ContainerID)
	})
	switch {
	case err == nil, ctx.Err() != nil:
	case out.n == 0:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		logging.FromContext(ctx).Warn("reading a container log", "pod", ns+"/"+name, "container", container, "err", err)
	}
}

// hasContainer reports whether pod has a container, init container or
// ephemeral container named name.
func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exec answers /exec/{namespace}/{pod}[/{uid}]/{container}?command=...
// by upgrading to SPDY (protocols v4 to v1) or a websocket and running
// the command through the Streamer.
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	opts, id, ok := s.streamTarget(w, r)
	if !ok {
		return
	}
	remotecommand.ServeExec(w, r, execTarget{rt: s.cfg.Streamer, id: id}, r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container"),
		r.URL.Query()["command"], opts, s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// attach answers /attach/{namespace}/{pod}[/{uid}]/{container}.
func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	opts, id, ok := s.streamTarget(w, r)
	if !ok {
		return
	}
	remotecommand.ServeAttach(w, r, execTarget{rt: s.cfg.Streamer, id: id}, r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container"),
		opts, s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// streamTarget resolves an exec or attach request to its options and
// container, answering the request itself (as the kubelet) when it
// cannot: 400 for no streams, 404 for no pod, 500 for no running
// container.
func (s *Server) streamTarget(w http.ResponseWriter, r *http.Request) (*remotecommand.Options, string, bool) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, "", false
	}
	pod, ok := s.cfg.Provider.Pod(r.PathValue("namespace"), r.PathValue("pod"))
	if !ok {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return nil, "", false
	}
	container := r.PathValue("container")
	notFound := fmt.Sprintf("container not found (%q)", container)
	if uid := r.PathValue("uid"); uid != "" && uid != string(pod.UID) {
		http.Error(w, notFound, http.StatusInternalServerError)
		return nil, "", false
	}
	id, err := s.cfg.Provider.ContainerID(r.Context(), pod, container)
	if errors.Is(err, ErrNotFound) {
		http.Error(w, notFound, http.StatusInternalServerError)
		return nil, "", false
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil, "", false
	}
	return opts, id, true
}

// execTarget runs exec and attach in one container by runtime ID.
type execTarget struct {
	rt streaming.Runtime
	id string
}

func (t execTarget) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return t.rt.Exec(ctx, t.id, cmd, in, out, errOut, tty, resize)
}

func (t execTarget) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return t.rt.Attach(ctx, t.id, in, out, errOut, tty, resize)
}

// portForward answers /portForward/{namespace}/{pod}[/{uid}].
func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, ok := s.cfg.Provider.Pod(r.PathValue("namespace"), r.PathValue("pod"))
	if !ok {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	if uid := r.PathValue("uid"); uid != "" && uid != string(pod.UID) {
		http.Error(w, "pod not found", http.StatusNotFound)
		return
	}
	sandbox, err := s.cfg.Provider.PodSandboxID(r.Context(), pod)
	if errors.Is(err, ErrNotFound) {
		http.Error(w, "pod not found", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	portforward.ServePortForward(w, r, forwardTarget{rt: s.cfg.Streamer, sandbox: sandbox}, pod.Name, string(pod.UID), opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, portforward.SupportedProtocols)
}

// forwardTarget forwards ports of one pod sandbox.
type forwardTarget struct {
	rt      streaming.Runtime
	sandbox string
}

func (t forwardTarget) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	return t.rt.PortForward(ctx, t.sandbox, port, stream)
}
