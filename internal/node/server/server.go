package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/cri-streaming/pkg/streaming"

	"volplane/internal/logging"
)

// DefaultPort is the kubelet's port.
const DefaultPort = 10250

// ErrNotFound is what a Provider returns (wrapped) when the container or
// pod asked for has no instance to serve.
var ErrNotFound = errors.New("not found")

// Provider is what the server needs from the node agent. Pods are the
// ones bound to this node as the agent knows them.
type Provider interface {
	// Pods returns the pods bound to this node, for /pods.
	Pods() []*corev1.Pod
	// Pod returns the pod namespace/name bound to this node.
	Pod(namespace, name string) (*corev1.Pod, bool)
	// ContainerLog returns the log of a container of pod (one of its
	// containers, init containers or ephemeral containers): its current
	// instance, or with previous the one that last terminated. The error's
	// text reaches the user, so it says what the kubelet says ("previous
	// terminated container %q in pod %q not found", "container %q in pod
	// %q is waiting to start: ContainerCreating", ...).
	ContainerLog(ctx context.Context, pod *corev1.Pod, container string, previous bool) (LogFile, error)
	// ContainerRunning reports whether the runtime's container id is
	// running; a followed log ends once it is not and the file is read.
	ContainerRunning(ctx context.Context, containerID string) (bool, error)
	// ContainerID returns the runtime ID of the running instance of a
	// container of pod, for exec and attach; ErrNotFound when none runs.
	ContainerID(ctx context.Context, pod *corev1.Pod, container string) (string, error)
	// PodSandboxID returns the runtime ID of pod's sandbox, for port
	// forwarding; ErrNotFound when it has none.
	PodSandboxID(ctx context.Context, pod *corev1.Pod) (string, error)
}

// LogFile is one container instance's log: a file in the CRI log format.
type LogFile struct {
	ContainerID string
	Path        string
}

// Config configures the kubelet API server.
type Config struct {
	// Listen is the HOST:PORT to serve on; empty is ":10250".
	Listen string
	// NodeName is this node's name: authorization asks about
	// nodes/<NodeName>/<subresource>.
	NodeName string
	// GetCertificate returns the serving certificate, from the rotating
	// serving certificate manager (see ServingCertificate).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs verifies client certificates (the cluster CA, which signs
	// kube-apiserver's --kubelet-client-certificate).
	ClientCAs *x509.CertPool
	// Client reaches the API server as this node, to review bearer tokens
	// (TokenReview) and to authorize every request (SubjectAccessReview).
	Client kubernetes.Interface
	// Provider knows the node's pods and containers.
	Provider Provider
	// Streamer runs exec, attach and port forwarding by runtime ID. Exec
	// returns a k8s.io/utils/exec.ExitError for a command that exited
	// non-zero, so the client sees its exit code.
	Streamer streaming.Runtime
	// Metrics is served at /metrics; nil is a registry of the server's own
	// with the Go and process collectors.
	Metrics *prometheus.Registry
	// StreamIdleTimeout closes an exec, attach or port forward with no
	// traffic for this long (the kubelet's default 4h);
	// StreamCreationTimeout bounds the wait for a client's streams (30s).
	StreamIdleTimeout, StreamCreationTimeout time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = ":" + strconv.Itoa(DefaultPort)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("kubelet server: listen address %q: %w", c.Listen, err)
	}
	switch {
	case c.NodeName == "":
		return errors.New("kubelet server: no node name")
	case c.GetCertificate == nil:
		return errors.New("kubelet server: no serving certificate")
	case c.ClientCAs == nil:
		return errors.New("kubelet server: no client CA")
	case c.Client == nil:
		return errors.New("kubelet server: no API client")
	case c.Provider == nil:
		return errors.New("kubelet server: no provider")
	case c.Streamer == nil:
		return errors.New("kubelet server: no streamer")
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
		c.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if c.StreamIdleTimeout == 0 {
		c.StreamIdleTimeout = 4 * time.Hour
	}
	if c.StreamCreationTimeout == 0 {
		c.StreamCreationTimeout = 30 * time.Second
	}
	return nil
}

// Server is the kubelet API.
type Server struct {
	cfg      Config
	authn    *authenticator
	authz    *authorizer
	mux      *http.ServeMux
	requests *prometheus.CounterVec
}

// New returns a server for a validated copy of cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		authn: &authenticator{clientCAs: cfg.ClientCAs, reviews: cfg.Client},
		authz: &authorizer{reviews: cfg.Client},
		mux:   http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_http_requests_total",
			Help: "Requests to the kubelet API by method, path and status code.",
		}, []string{"method", "path", "code"}),
	}
	if err := cfg.Metrics.Register(s.requests); err != nil {
		return nil, fmt.Errorf("kubelet server: %w", err)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /pods", s.pods)
	s.mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	for _, m := range []string{"GET", "POST"} {
		s.mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", s.exec)
		s.mux.HandleFunc(m+" /exec/{namespace}/{pod}/{uid}/{container}", s.exec)
		s.mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", s.attach)
		s.mux.HandleFunc(m+" /attach/{namespace}/{pod}/{uid}/{container}", s.attach)
		s.mux.HandleFunc(m+" /portForward/{namespace}/{pod}", s.portForward)
		s.mux.HandleFunc(m+" /portForward/{namespace}/{pod}/{uid}", s.portForward)
	}
	return s, nil
}

// TLSConfig is the server's TLS configuration: the serving certificate
// from Config.GetCertificate, and client certificates asked for but
// verified by the authenticator, so that a bad one is answered 401 as by
// the kubelet rather than failing the handshake.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.cfg.GetCertificate,
		ClientAuth:     tls.RequestClientCert,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// Handler is the API behind authentication and authorization.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Run listens on Config.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then closes it. Streams still
// open (exec sessions, followed logs) are cut when ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := logging.FromContext(ctx).With("component", "kubelet-server")
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return logging.NewContext(ctx, log) },
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = srv.Close()
		case <-done:
		}
	}()
	log.Info("serving the kubelet API", "address", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("kubelet server: %w", err)
	}
	return nil
}

// serveHTTP authenticates, authorizes and dispatches a request. Neither a
// refusal nor an error says anything about the node's pods: the caller
// learns only that it was not recognised (401) or not allowed (403).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	defer func() { s.requests.WithLabelValues(r.Method, metricPath(r.URL.Path), strconv.Itoa(rec.code)).Inc() }()
	log := logging.FromContext(r.Context())

	u, ok, err := s.authn.authenticate(r)
	if err != nil {
		log.Debug("unable to authenticate a request", "err", err)
	}
	if err != nil || !ok {
		http.Error(rec, "Unauthorized", http.StatusUnauthorized)
		return
	}
	attrs := requestAttributes(u, s.cfg.NodeName, r)
	var subresources []string
	allowed := false
	for _, a := range attrs {
		subresources = append(subresources, a.Subresource)
		ok, err := s.authz.authorize(r.Context(), a)
		if err != nil {
			log.Error("authorization error", "user", u.Name, "verb", a.Verb, "subresource", a.Subresource, "err", err)
			http.Error(rec, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s)", u.Name, a.Verb, a.Subresource), http.StatusInternalServerError)
			return
		}
		if ok {
			allowed = true
			break
		}
	}
	if !allowed {
		log.Debug("forbidden", "user", u.Name, "verb", attrs[0].Verb, "subresources", subresources)
		http.Error(rec, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", u.Name, attrs[0].Verb, subresources), http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// metricPath is the first segment of a path, so that the metric's labels
// stay few.
func metricPath(p string) string {
	for _, known := range []string{"/healthz", "/metrics", "/pods", "/containerLogs", "/exec", "/attach", "/portForward"} {
		if isSubpath(p, known) {
			return known
		}
	}
	return "other"
}

// statusRecorder remembers the status code written, and passes on the
// interfaces streaming needs (flushing and hijacking).
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush sends what was written: followed logs need it.
func (r *statusRecorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Hijack hands the connection to the SPDY or websocket upgrader of exec,
// attach and port forwarding (HTTP/1.1 only, as the kubelet).
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// pods answers /pods: the node's pods as a v1 PodList.
func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	list := &corev1.PodList{}
	for _, p := range s.cfg.Provider.Pods() {
		list.Items = append(list.Items, *p)
	}
	data, err := runtime.Encode(scheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion), list)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}
