package pods

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestReadinessProbeGatesReady(t *testing.T) {
	c := ctr("app")
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 1}
	pod := testPod("ready", c)
	h := newHarness(t, pod)
	h.rt.InjectError("ExecSync", errString("exit status 1"))
	pw := h.worker(pod)
	h.sync(pw)
	id, _ := h.w.ContainerID("default", "ready", "app")
	if got := h.apiPod(pod); condition(got, corev1.PodReady) != corev1.ConditionFalse {
		t.Fatal("Ready before the readiness probe passed")
	}
	waitFor(t, "a failed then a passed readiness probe", func() bool { return pw.probes.ready(&c, id) })
	if ev := h.drainEvents(); !hasEvent(ev, "Warning Unhealthy Readiness probe failed: exit status 1") {
		t.Errorf("events %q", ev)
	}
	h.sync(pw)
	if got := h.apiPod(pod); condition(got, corev1.PodReady) != corev1.ConditionTrue {
		t.Error("not Ready after the probe passed")
	}
	pw.probes.stopAll()
}

func TestLivenessProbeGivesUp(t *testing.T) {
	c := ctr("app")
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}, FailureThreshold: 1, PeriodSeconds: 1}
	pod := testPod("liveloop", c)
	h := newHarness(t, pod)
	h.rt.InjectError("ExecSync", errString("exit status 1"))
	pw := h.worker(pod)
	h.sync(pw)
	id, _ := h.w.ContainerID("default", "liveloop", "app")
	waitFor(t, "the liveness probe to give up", func() bool { _, failed := pw.probes.failed(id); return failed })
	msg, _ := pw.probes.failed(id)
	if msg != "Container app failed liveness probe, will be restarted" {
		t.Errorf("message %q", msg)
	}
}

func TestRunProbeHandlers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	c := ctr("app")
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}
	tests := []struct {
		name    string
		handler corev1.ProbeHandler
		want    bool
		wantMsg string
	}{
		{"http ok, named port", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, true, ""},
		{"http 503", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/bad", Port: intstr.FromInt32(int32(port))}}, false, "HTTP probe failed with statuscode: 503"},
		{"tcp open", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}, true, ""},
		{"tcp closed", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closedPort))}}, false, "connection refused"},
		{"unknown named port", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}, false, "couldn't find port: nope in app"},
	}
	h := newHarness(t)
	h.w.cfg.NodeIP = host
	pw := newPodWorker(h.w, testPod("p", c), false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, msg := pw.runProbe(t.Context(), &c, "id", &corev1.Probe{ProbeHandler: tt.handler, TimeoutSeconds: 5})
			if ok != tt.want || (tt.wantMsg != "" && !strings.Contains(msg, tt.wantMsg)) {
				t.Errorf("got %v %q, want %v %q", ok, msg, tt.want, tt.wantMsg)
			}
		})
	}
}
