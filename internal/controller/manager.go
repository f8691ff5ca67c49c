package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"volplane/internal/logging"
)

const (
	// UserAgent is the user agent of every controller's API client; the API
	// server records it as the field manager of the controllers' writes.
	UserAgent = "volplane-controller-manager"
	// LeaseNamespace and LeaseName name the Lease that elects the leader.
	LeaseNamespace = "kube-system"
	LeaseName      = "volplane-controller-manager"
)

// Context is what a controller gets to build itself from.
type Context struct {
	// Client is a typed client with the manager's user agent.
	Client kubernetes.Interface
	// Informers is shared by all controllers; the manager starts it after
	// every InitFunc has run, so controllers register their informers in
	// InitFunc.
	Informers informers.SharedInformerFactory
	// Metrics is the manager's Prometheus registry.
	Metrics prometheus.Registerer
	// Workers is the default number of workers per controller queue.
	Workers int

	events *eventBroadcasters
}

// Recorder returns an event recorder whose events name component as
// their source (e.g. "persistentvolume-controller", as upstream's).
func (c *Context) Recorder(component string) record.EventRecorder {
	return c.events.recorder(component)
}

// eventBroadcasters gives each component an event broadcaster of its own,
// as each of upstream's controllers and sidecars has: a broadcaster posts
// its events one at a time and drops what is past its queue of 1,000, so
// with one shared broadcaster a burst of 1,000 claims (three events each
// from the PV controller and the provisioner) lost two thirds of them.
type eventBroadcasters struct {
	ctx    context.Context
	client kubernetes.Interface

	mu   sync.Mutex
	byID map[string]record.EventBroadcaster
}

func newEventBroadcasters(ctx context.Context, client kubernetes.Interface) *eventBroadcasters {
	return &eventBroadcasters{ctx: ctx, client: client, byID: map[string]record.EventBroadcaster{}}
}

func (e *eventBroadcasters) recorder(component string) record.EventRecorder {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.byID[component]
	if b == nil {
		b = record.NewBroadcaster(record.WithContext(e.ctx))
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: e.client.CoreV1().Events("")})
		e.byID[component] = b
	}
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// shutdown stops every broadcaster; events still queued are dropped.
func (e *eventBroadcasters) shutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.byID {
		b.Shutdown()
	}
}

// Controller is a running controller.
type Controller interface {
	// Run blocks until ctx is done. Informers are synced before it is
	// called.
	Run(ctx context.Context)
}

// InitFunc builds a controller. It registers the informers it needs on
// cctx.Informers and must not block.
type InitFunc func(ctx context.Context, cctx *Context) (Controller, error)

// Descriptor names a controller and how to build it.
type Descriptor struct {
	Name string
	Init InitFunc
}

// Config configures a Manager.
type Config struct {
	// REST reaches the API server; the manager sets its user agent.
	REST *rest.Config
	// Controllers are the controllers to run, in order.
	Controllers []Descriptor
	// Disabled names controllers not to run.
	Disabled []string
	// LeaderElect elects a leader through a Lease before running
	// controllers. Off only in tests with one manager.
	LeaderElect bool
	// Identity is this manager's name in the Lease; defaults to
	// hostname_uuid.
	Identity string
	// LeaseNamespace and LeaseName name the Lease; defaults
	// LeaseNamespace and LeaseName (a CSI controller elects one per
	// driver).
	LeaseNamespace, LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Workers per controller queue.
	Workers int
	// MetricsListen is a loopback HOST:PORT for /metrics; empty is off.
	MetricsListen string
	// MetricsAuth serves /metrics as kube-controller-manager's secure
	// port: HTTPS with a certificate made in memory, to callers the API
	// authenticates (TokenReview; no token is system:anonymous) and
	// authorizes for get /metrics (SubjectAccessReview). Without it the
	// metrics are plain HTTP to anyone who reaches the address, as a CSI
	// sidecar's --http-endpoint serves them.
	MetricsAuth bool
	// ResyncPeriod of the shared informers.
	ResyncPeriod time.Duration
	// QPS and Burst limit the controllers' API client. They replace the
	// REST configuration's limits: the PV controller makes four writes
	// per bind, and upstream's default of 20 QPS is what caps
	// kube-controller-manager at about 5 binds/s.
	QPS   float32
	Burst int
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.REST == nil {
		return errors.New("controller manager: no API configuration")
	}
	for _, name := range c.Disabled {
		if !slices.ContainsFunc(c.Controllers, func(d Descriptor) bool { return d.Name == name }) {
			return fmt.Errorf("controller manager: unknown controller %q", name)
		}
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		c.Identity = host + "_" + uuid.NewString()
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = LeaseNamespace
	}
	if c.LeaseName == "" {
		c.LeaseName = LeaseName
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = 10 * time.Minute
	}
	if c.QPS == 0 {
		c.QPS = 2000
	}
	if c.Burst == 0 {
		c.Burst = 2 * int(c.QPS)
	}
	if c.MetricsListen != "" {
		host, _, err := net.SplitHostPort(c.MetricsListen)
		if err != nil {
			return fmt.Errorf("controller manager: metrics address %q: %w", c.MetricsListen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("controller manager: metrics address %q is not loopback", c.MetricsListen)
		}
	}
	return nil
}

// Manager runs volplane's controllers.
type Manager struct {
	cfg      Config
	registry *prometheus.Registry
	leader   prometheus.Gauge
}

// New returns a manager for a validated copy of cfg.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	leader := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "volplane_controller_manager_leader",
		Help: "1 while this controller manager holds the leader Lease.",
	})
	reg.MustRegister(leader)
	return &Manager{cfg: cfg, registry: reg, leader: leader}, nil
}

// Registry is the manager's Prometheus registry.
func (m *Manager) Registry() *prometheus.Registry { return m.registry }

// Run serves metrics and, once leader (or at once without election), runs
// every enabled controller until ctx is done. It returns when ctx is done
// and every controller has stopped. Losing the Lease stops the
// controllers, so nothing acts on stale leadership, and then campaigns
// again with freshly built controllers: upstream's controller managers
// exit instead and leave the restart to a supervisor, but a volplane
// process also serves the API or runs the node, which a renewal slowed
// past RenewDeadline by a loaded machine must not take down.
func (m *Manager) Run(ctx context.Context) error {
	log := logging.FromContext(ctx).With("component", "controller-manager")
	ctx = logging.NewContext(ctx, log)

	if m.cfg.MetricsListen != "" {
		stop, err := m.serveMetrics(log)
		if err != nil {
			return err
		}
		defer stop()
	}

	if len(m.enabled()) == 0 {
		// Nothing to run: do not take the Lease from a manager that has
		// work (as when this server leaves its controllers to one run
		// with --kubeconfig elsewhere).
		log.Info("every controller is disabled; not taking the controller lease")
		<-ctx.Done()
		return nil
	}

	restCfg := rest.CopyConfig(m.cfg.REST)
	restCfg.UserAgent = UserAgent
	restCfg.QPS, restCfg.Burst = m.cfg.QPS, m.cfg.Burst
	// Protobuf, as kube-controller-manager's --kube-api-content-type
	// default: cheaper than JSON for the API and for the controllers.
	restCfg.ContentType = runtime.ContentTypeProtobuf
	restCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	return m.run(ctx, client)
}

// run runs the controllers on client: at once without election, else
// whenever this manager holds the Lease.
func (m *Manager) run(ctx context.Context, client kubernetes.Interface) error {
	if !m.cfg.LeaderElect {
		return m.runControllers(ctx, client)
	}
	log := logging.FromContext(ctx)
	for {
		lost, err := m.lead(ctx, client)
		if !lost || ctx.Err() != nil {
			return err
		}
		if err != nil {
			return err
		}
		log.Warn("lost the controller lease; controllers stopped, campaigning again", "lease", m.cfg.LeaseNamespace+"/"+m.cfg.LeaseName)
	}
}

// lead campaigns for the Lease and runs the controllers while it is held.
// It returns once ctx is done or the Lease is lost (lost true), in both
// cases after every controller has stopped.
func (m *Manager) lead(ctx context.Context, client kubernetes.Interface) (lost bool, err error) {
	log := logging.FromContext(ctx)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: m.cfg.LeaseNamespace, Name: m.cfg.LeaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: m.cfg.Identity},
	}
	var (
		runErr  error
		started bool
		mu      sync.Mutex
		stopped = make(chan struct{})
	)
	electCtx, stopElection := context.WithCancel(ctx)
	defer stopElection()
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   m.cfg.LeaseDuration,
		RenewDeadline:   m.cfg.RenewDeadline,
		RetryPeriod:     m.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            m.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				started = true
				mu.Unlock()
				defer close(stopped)
				log.Info("became leader", "lease", m.cfg.LeaseNamespace+"/"+m.cfg.LeaseName, "identity", m.cfg.Identity)
				m.leader.Set(1)
				defer m.leader.Set(0)
				err := m.runControllers(lctx, client)
				mu.Lock()
				runErr = err
				mu.Unlock()
				if err != nil {
					// A controller that cannot start must not leave
					// the Lease held by a manager running nothing.
					stopElection()
				}
			},
			OnStoppedLeading: func() {
				mu.Lock()
				failed := runErr != nil
				mu.Unlock()
				if ctx.Err() == nil && !failed {
					mu.Lock()
					lost = true
					mu.Unlock()
				}
			},
			OnNewLeader: func(identity string) {
				if identity != m.cfg.Identity {
					log.Info("controllers run elsewhere", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return false, fmt.Errorf("controller manager: %w", err)
	}
	log.Info("waiting for the controller lease", "lease", m.cfg.LeaseNamespace+"/"+m.cfg.LeaseName, "identity", m.cfg.Identity)
	le.Run(electCtx)
	// Run cancels OnStartedLeading's context on return; wait for the
	// controllers to stop if they started.
	mu.Lock()
	wasLeader := started
	mu.Unlock()
	if wasLeader {
		<-stopped
	}
	mu.Lock()
	defer mu.Unlock()
	return lost, runErr
}

// runControllers builds every enabled controller, starts the informers,
// waits for their caches and runs the controllers until ctx is done.
func (m *Manager) runControllers(ctx context.Context, client kubernetes.Interface) error {
	log := logging.FromContext(ctx)
	events := newEventBroadcasters(ctx, client)
	defer events.shutdown()

	cctx := &Context{
		Client:    client,
		Informers: informers.NewSharedInformerFactory(client, m.cfg.ResyncPeriod),
		Metrics:   m.registry,
		Workers:   m.cfg.Workers,
		events:    events,
	}
	type running struct {
		name string
		c    Controller
	}
	var ctrls []running
	for _, d := range m.enabled() {
		c, err := d.Init(ctx, cctx)
		if err != nil {
			return fmt.Errorf("controller %s: %w", d.Name, err)
		}
		ctrls = append(ctrls, running{d.Name, c})
	}
	cctx.Informers.Start(ctx.Done())
	defer cctx.Informers.Shutdown()
	for typ, ok := range cctx.Informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("controller manager: informer for %v did not sync", typ)
		}
	}
	var wg sync.WaitGroup
	for _, r := range ctrls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("starting controller", "controller", r.name)
			r.c.Run(logging.NewContext(ctx, log.With("controller", r.name)))
		}()
	}
	wg.Wait()
	return nil
}

func (m *Manager) serveMetrics(log *slog.Logger) (stop func(), err error) {
	var handler http.Handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	scheme := "http"
	var tlsCfg *tls.Config
	if m.cfg.MetricsAuth {
		client, err := kubernetes.NewForConfig(m.cfg.REST)
		if err != nil {
			return nil, fmt.Errorf("controller manager: metrics: %w", err)
		}
		if tlsCfg, err = selfSignedTLS(m.cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("controller manager: metrics: %w", err)
		}
		handler = &metricsAuth{client: client, next: handler, log: log}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", m.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("controller manager: metrics: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving controller metrics", "address", scheme+"://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// enabled are the controllers to run, in order.
func (m *Manager) enabled() []Descriptor {
	var out []Descriptor
	for _, d := range m.cfg.Controllers {
		if !slices.Contains(m.cfg.Disabled, d.Name) {
			out = append(out, d)
		}
	}
	return out
}
