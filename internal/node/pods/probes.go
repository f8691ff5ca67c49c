package pods

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
)

type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
	startup   probeKind = "Startup"
)

type probeKey struct {
	id   string
	kind probeKind
}

// podProbes runs the probes of a pod's running containers, one goroutine
// per container instance and probe, and keeps their results.
type podProbes struct {
	pw      *podWorker
	mu      sync.Mutex
	cancels map[probeKey]context.CancelFunc
	results map[probeKey]bool
}

func newPodProbes(pw *podWorker) *podProbes {
	return &podProbes{pw: pw, cancels: map[probeKey]context.CancelFunc{}, results: map[probeKey]bool{}}
}

// started implements probeView: no startup probe, or it succeeded.
func (p *podProbes) started(c *corev1.Container, id string) bool {
	if c.StartupProbe == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.results[probeKey{id, startup}]
}

// ready reports a started instance's readiness: no readiness probe, or
// it succeeded.
func (p *podProbes) ready(c *corev1.Container, id string) bool {
	if !p.started(c, id) {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.results[probeKey{id, readiness}]
}

// failed implements probeView: a liveness or startup probe reached its
// failure threshold.
func (p *podProbes) failed(id string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := p.pw.instanceName(id)
	for _, k := range []probeKind{liveness, startup} {
		if ok, seen := p.results[probeKey{id, k}]; seen && !ok {
			if _, running := p.cancels[probeKey{id, k}]; !running {
				return fmt.Sprintf("Container %s failed %s probe, will be restarted", name, lower(k)), true
			}
		}
	}
	return "", false
}

func lower(k probeKind) string {
	switch k {
	case liveness:
		return "liveness"
	case readiness:
		return "readiness"
	}
	return "startup"
}

// seed records a result known from before an agent restart.
func (p *podProbes) seed(id string, kind probeKind, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, seen := p.results[probeKey{id, kind}]; !seen {
		p.results[probeKey{id, kind}] = ok
	}
}

// sync starts the probes of running instances that lack them and stops
// those of instances no longer running. Results known from the pod's
// last status (an adopted container) are kept: a restart of the agent
// does not make a ready container unready.
func (p *podProbes) sync(ctx context.Context, pod *corev1.Pod, rt *podRuntime) {
	running := map[string]bool{}
	old := map[string]corev1.ContainerStatus{}
	for _, s := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		old[s.ContainerID] = s
	}
	for _, inst := range rt.running() {
		running[inst.ID] = true
		c := specOf(pod, inst.Name)
		if s, ok := old[containerIDScheme+inst.ID]; ok && s.State.Running != nil {
			if s.Started != nil && *s.Started {
				p.seed(inst.ID, startup, true)
			}
			if s.Ready {
				p.seed(inst.ID, readiness, true)
			}
		}
		for kind, probe := range map[probeKind]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
			if probe == nil {
				continue
			}
			p.ensure(ctx, pod, c, inst, kind, probe)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, cancel := range p.cancels {
		if !running[k.id] {
			cancel()
			delete(p.cancels, k)
		}
	}
	for k := range p.results {
		if !running[k.id] {
			delete(p.results, k)
		}
	}
}

func (p *podProbes) ensure(ctx context.Context, pod *corev1.Pod, c *corev1.Container, inst *instance, kind probeKind, probe *corev1.Probe) {
	key := probeKey{inst.ID, kind}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.cancels[key]; ok {
		return
	}
	if ok, seen := p.results[key]; seen && ((kind == startup && ok) || (kind != readiness && !ok)) {
		// A startup probe that succeeded is done; a liveness or
		// startup probe that failed waits for the kill.
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	p.cancels[key] = cancel
	go p.loop(ctx, pod, c, inst, kind, probe)
}

// stop stops the probes of one instance.
func (p *podProbes) stop(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, cancel := range p.cancels {
		if k.id == id {
			cancel()
			delete(p.cancels, k)
		}
	}
}

func (p *podProbes) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, cancel := range p.cancels {
		cancel()
		delete(p.cancels, k)
	}
}

// loop runs one probe until its context ends: after initialDelaySeconds
// from the container's start, every periodSeconds; successThreshold and
// failureThreshold consecutive results change the result. Liveness and
// readiness wait for the startup probe. Each failure is an Unhealthy
// event, as upstream.
func (p *podProbes) loop(ctx context.Context, pod *corev1.Pod, c *corev1.Container, inst *instance, kind probeKind, probe *corev1.Probe) {
	period := time.Duration(max(probe.PeriodSeconds, 1)) * time.Second
	succThreshold, failThreshold := max(probe.SuccessThreshold, 1), max(probe.FailureThreshold, 1)
	delay := time.Until(inst.StartedAt.Add(time.Duration(probe.InitialDelaySeconds) * time.Second))
	if inst.StartedAt.IsZero() {
		delay = time.Duration(probe.InitialDelaySeconds) * time.Second
	}
	t := time.NewTimer(max(delay, 0))
	defer t.Stop()
	var successes, failures int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(period)
		if kind != startup && c.StartupProbe != nil && !p.started(c, inst.ID) {
			continue
		}
		ok, msg := p.pw.runProbe(ctx, c, inst.ID, probe)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			p.pw.w.cfg.Recorder.Eventf(containerRef(pod, c), corev1.EventTypeWarning, eventUnhealthy, "%s probe failed: %s", kind, msg)
		}
		var result, change bool
		switch {
		case ok && successes >= succThreshold:
			result, change = true, true
		case !ok && failures >= failThreshold:
			result, change = false, true
		}
		if !change {
			continue
		}
		p.mu.Lock()
		prev, seen := p.results[probeKey{inst.ID, kind}]
		p.results[probeKey{inst.ID, kind}] = result
		done := (kind == startup && result) || (kind != readiness && !result)
		if done {
			delete(p.cancels, probeKey{inst.ID, kind})
		}
		p.mu.Unlock()
		if !seen || prev != result {
			p.pw.kick()
		}
		if done {
			return
		}
	}
}

// runProbe runs a probe once: exec through the runtime, HTTP GET, TCP
// connect or gRPC health check against the pod's address.
func (pw *podWorker) runProbe(ctx context.Context, c *corev1.Container, id string, probe *corev1.Probe) (bool, string) {
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := pw.w.cfg.NodeIP
	switch {
	case probe.Exec != nil:
		stdout, stderr, err := pw.w.cfg.Runtime.ExecSync(ctx, id, probe.Exec.Command, timeout)
		if err != nil {
			out := string(stdout) + string(stderr)
			if out == "" {
				out = errMessage(err)
			}
			return false, out
		}
		return true, ""
	case probe.HTTPGet != nil:
		u, err := httpURL(probe.HTTPGet, host, c)
		if err != nil {
			return false, err.Error()
		}
		code, _, err := httpGet(ctx, u, probe.HTTPGet.HTTPHeaders)
		if err != nil {
			return false, err.Error()
		}
		if code < 200 || code >= 400 {
			return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", code)
		}
		return true, ""
	case probe.TCPSocket != nil:
		port, err := resolvePort(probe.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		if probe.TCPSocket.Host != "" {
			host = probe.TCPSocket.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		_ = conn.Close()
		return true, ""
	case probe.GRPC != nil:
		return grpcProbe(ctx, net.JoinHostPort(host, strconv.Itoa(int(probe.GRPC.Port))), probe.GRPC.Service, timeout)
	}
	return false, "missing probe handler"
}

// grpcProbe asks the standard gRPC health service.
func grpcProbe(ctx context.Context, addr string, service *string, timeout time.Duration) (bool, string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	req := &healthpb.HealthCheckRequest{}
	if service != nil {
		req.Service = *service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout)
		}
		return false, fmt.Sprintf("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return true, ""
}
