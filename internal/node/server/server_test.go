package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	clientexec "k8s.io/client-go/util/exec"
)

// TestAuthentication: who the caller is decides 401 (no usable identity),
// 403 (known but not allowed) or the answer, and the refusals say nothing
// about the node's pods.
func TestAuthentication(t *testing.T) {
	env := startServer(t, &fakeProvider{pods: []*corev1.Pod{testPod("default", "web")}})
	env.policy.tokens["viewer-token"] = authenticationv1.UserInfo{Username: "viewer", Groups: []string{"viewers"}}
	_, _, adminCert := env.ca.clientCert(t, adminUser)
	_, _, viewerCert := env.ca.clientCert(t, "viewer")
	_, _, strangerCert := newTestCA(t, "other-ca").clientCert(t, adminUser)
	_, _, serverOnly := env.ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: adminUser},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})

	tests := []struct {
		name     string
		certs    []tls.Certificate
		token    string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "anonymous", path: "/pods", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "anonymous unknown path", path: "/nothing/here", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "anonymous logs of a pod that exists", path: "/containerLogs/default/web/app", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "unknown token", token: "guess", path: "/pods", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "certificate of another CA", certs: []tls.Certificate{strangerCert}, path: "/pods", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "server-only certificate", certs: []tls.Certificate{serverOnly}, path: "/pods", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "token, not allowed", token: "viewer-token", path: "/containerLogs/default/web/app", wantCode: 403,
			wantBody: "Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[proxy])\n"},
		{name: "token, not allowed, no such pod", token: "viewer-token", path: "/containerLogs/default/nope/app", wantCode: 403,
			wantBody: "Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[proxy])\n"},
		{name: "certificate, not allowed", certs: []tls.Certificate{viewerCert}, path: "/pods", wantCode: 403,
			wantBody: "Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"},
		{name: "token allowed", token: adminToken, path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "certificate of another CA, token allowed", certs: []tls.Certificate{strangerCert}, token: adminToken, path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "certificate of another CA, unknown token", certs: []tls.Certificate{strangerCert}, token: "guess", path: "/healthz", wantCode: 401, wantBody: "Unauthorized\n"},
		{name: "certificate allowed", certs: []tls.Certificate{adminCert}, path: "/healthz", wantCode: 200, wantBody: "ok"},
		{name: "allowed, unknown path", certs: []tls.Certificate{adminCert}, path: "/configz", wantCode: 404, wantBody: "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := env.do(t, env.httpClient(tt.certs...), http.MethodGet, tt.path, tt.token)
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// TestAuthorizationFallback: /pods is allowed by nodes/pods or, failing
// that, by nodes/proxy; /containerLogs only by nodes/proxy.
func TestAuthorizationFallback(t *testing.T) {
	env := startServer(t, &fakeProvider{})
	tests := []struct {
		name      string
		allowed   string // the one subresource the caller may get
		path      string
		wantCode  int
		wantAsked []string // "verb nodes/<subresource>", in order
	}{
		{name: "pods by nodes/pods", allowed: "pods", path: "/pods", wantCode: 200,
			wantAsked: []string{"get nodes/pods"}},
		{name: "pods by nodes/proxy", allowed: "proxy", path: "/pods", wantCode: 200,
			wantAsked: []string{"get nodes/pods", "get nodes/proxy"}},
		{name: "healthz by nodes/proxy", allowed: "proxy", path: "/healthz", wantCode: 200,
			wantAsked: []string{"get nodes/healthz", "get nodes/proxy"}},
		{name: "metrics not by nodes/proxy", allowed: "proxy", path: "/metrics", wantCode: 403,
			wantAsked: []string{"get nodes/metrics"}},
		{name: "logs not by nodes/log", allowed: "log", path: "/containerLogs/ns/p/c", wantCode: 403,
			wantAsked: []string{"get nodes/proxy"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A user of its own per case, so that no answer is cached.
			user := fmt.Sprintf("u-%s-%d", tt.allowed, i)
			env.policy.mu.Lock()
			env.policy.tokens[user] = authenticationv1.UserInfo{Username: user}
			env.policy.allow = func(u string, ra *authorizationv1.ResourceAttributes) bool {
				return u == adminUser || strings.HasPrefix(u, "u-"+ra.Subresource+"-")
			}
			env.policy.reviews = nil
			env.policy.mu.Unlock()
			code, _ := env.do(t, env.httpClient(), http.MethodGet, tt.path, user)
			if code != tt.wantCode {
				t.Errorf("GET %s = %d, want %d", tt.path, code, tt.wantCode)
			}
			var want []string
			for _, a := range tt.wantAsked {
				want = append(want, user+" "+a+" "+testNode)
			}
			if got := env.policy.asked(); !slices.Equal(got, want) {
				t.Errorf("reviews = %q, want %q", got, want)
			}
			// A second request is answered from the cache.
			env.do(t, env.httpClient(), http.MethodGet, tt.path, user)
			if got := env.policy.asked(); len(got) != len(tt.wantAsked) {
				t.Errorf("second request asked again: %q", got)
			}
		})
	}
}

// TestRequestAttributes is the kubelet's path -> nodes/<subresource> and
// method -> verb mapping.
func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		wantVerb     string
		want         []string
	}{
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/pods/", "get", []string{"pods", "proxy"}},
		{"GET", "/podsx", "get", []string{"proxy"}},
		{"GET", "/runningpods/", "get", []string{"pods", "proxy"}},
		{"GET", "/allocatedPods/ns/p", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/healthz/ping", "get", []string{"healthz", "proxy"}},
		{"GET", "/configz", "get", []string{"configz", "proxy"}},
		{"GET", "/flagz", "get", []string{"configz"}},
		{"GET", "/statusz", "get", []string{"statusz"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/stats", "get", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/cadvisor", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		{"POST", "/checkpoint/ns/p/c", "create", []string{"checkpoint"}},
		{"GET", "/containerLogs/ns/p/c", "get", []string{"proxy"}},
		{"POST", "/exec/ns/p/c", "create", []string{"proxy"}},
		{"GET", "/exec/ns/p/uid/c", "get", []string{"proxy"}},
		{"POST", "/attach/ns/p/c", "create", []string{"proxy"}},
		{"POST", "/portForward/ns/p", "create", []string{"proxy"}},
		{"POST", "/run/ns/p/c", "create", []string{"proxy"}},
		{"PUT", "/x", "update", []string{"proxy"}},
		{"PATCH", "/x", "patch", []string{"proxy"}},
		{"DELETE", "/x", "delete", []string{"proxy"}},
		{"OPTIONS", "/x", "", []string{"proxy"}},
	}
	u := &userInfo{Name: "someone"}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		attrs := requestAttributes(u, testNode, r)
		var got []string
		for _, a := range attrs {
			got = append(got, a.Subresource)
			if a.Verb != tt.wantVerb || a.Name != testNode || a.User != u {
				t.Errorf("%s %s: attributes %+v, want verb %q on %s", tt.method, tt.path, a, tt.wantVerb, testNode)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: subresources %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

// TestPods: /pods is the node's pods as a v1 PodList; other methods are
// refused.
func TestPods(t *testing.T) {
	env := startServer(t, &fakeProvider{pods: []*corev1.Pod{testPod("default", "a"), testPod("kube-system", "b")}})
	code, body := env.do(t, env.httpClient(), http.MethodGet, "/pods", adminToken)
	if code != 200 {
		t.Fatalf("GET /pods = %d %s", code, body)
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 2 || list.Items[1].Name != "b" {
		t.Errorf("GET /pods = %s", body)
	}
	if code, _ := env.do(t, env.httpClient(), http.MethodPost, "/pods", adminToken); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /pods = %d, want 405", code)
	}
	if code, body := env.do(t, env.httpClient(), http.MethodGet, "/metrics", adminToken); code != 200 || !strings.Contains(body, `kubelet_http_requests_total{code="200",method="GET",path="/pods"} 1`) {
		t.Errorf("GET /metrics = %d, without the /pods request:\n%s", code, body)
	}
}

// TestExec runs commands through client-go's SPDY executor, as
// kube-apiserver does for kubectl exec, and checks streams, exit codes
// and which container the streamer was asked for.
func TestExec(t *testing.T) {
	pod := testPod("default", "web")
	env := startServer(t, &fakeProvider{
		pods: []*corev1.Pod{pod},
		ids:  map[string]string{"default/web/app": "cid-app"},
	})
	certPEM, keyPEM, _ := env.ca.clientCert(t, adminUser)
	cfg := &rest.Config{
		Host:            "https://" + env.addr,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.ca.pem, CertData: certPEM, KeyData: keyPEM},
	}
	tests := []struct {
		name       string
		path       string
		cmd        []string
		stdin      string
		wantOut    string
		wantErrOut string
		wantCode   int    // exit code; 0 for success
		wantErr    string // an error that is not an exit code
	}{
		{name: "echo", path: "/exec/default/web/app", cmd: []string{"echo", "hello", "world"}, wantOut: "[hello world]\n"},
		{name: "stdin", path: "/exec/default/web/app", cmd: []string{"cat"}, stdin: "typed\n", wantOut: "typed\n"},
		{name: "stderr", path: "/exec/default/web/app", cmd: []string{"stderr", "oops"}, wantErrOut: "oops"},
		{name: "exit code", path: "/exec/default/web/app", cmd: []string{"exit", "3"}, wantCode: 3},
		{name: "with uid", path: "/exec/default/web/web-uid/app", cmd: []string{"echo", "x"}, wantOut: "[x]\n"},
		{name: "wrong uid", path: "/exec/default/web/other-uid/app", cmd: []string{"echo"}, wantErr: `container not found ("app")`},
		{name: "no running container", path: "/exec/default/web/init", cmd: []string{"echo"}, wantErr: `container not found ("init")`},
		{name: "no pod", path: "/exec/default/nope/app", cmd: []string{"echo"}, wantErr: "pod does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"command": tt.cmd, "output": {"1"}, "error": {"1"}}
			if tt.stdin != "" {
				q.Set("input", "1")
			}
			u, _ := url.Parse("https://" + env.addr + tt.path + "?" + q.Encode())
			ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			opts := remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}
			if tt.stdin != "" {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			err = ex.StreamWithContext(context.Background(), opts)
			var exit clientexec.ExitError
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			case tt.wantCode != 0:
				if !asExitError(err, &exit) || exit.ExitStatus() != tt.wantCode {
					t.Fatalf("error = %v, want exit code %d", err, tt.wantCode)
				}
			case err != nil:
				t.Fatalf("error = %v", err)
			}
			if stdout.String() != tt.wantOut || stderr.String() != tt.wantErrOut {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.wantOut, tt.wantErrOut)
			}
		})
	}
	if got := env.streamer.ids; !slices.Equal(got, []string{"cid-app", "cid-app", "cid-app", "cid-app", "cid-app"}) {
		t.Errorf("streamer asked for %q", got)
	}
}

func asExitError(err error, out *clientexec.ExitError) bool {
	e, ok := err.(clientexec.ExitError)
	if ok {
		*out = e
	}
	return ok
}

// TestAttachAndPortForward: attach and port forwarding reach the
// streamer for the right container and sandbox, through client-go's SPDY
// clients as kubectl uses them.
func TestAttachAndPortForward(t *testing.T) {
	pod := testPod("default", "web")
	env := startServer(t, &fakeProvider{
		pods:    []*corev1.Pod{pod},
		ids:     map[string]string{"default/web/app": "cid-app"},
		sandbox: map[types.UID]string{pod.UID: "sandbox-web"},
	})
	certPEM, keyPEM, _ := env.ca.clientCert(t, adminUser)
	cfg := &rest.Config{
		Host:            "https://" + env.addr,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.ca.pem, CertData: certPEM, KeyData: keyPEM},
	}

	u, _ := url.Parse("https://" + env.addr + "/attach/default/web/app?input=1&output=1")
	ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader("attached\n"), Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "attached\n" {
		t.Errorf("attach stdout %q", stdout.String())
	}

	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse("https://" + env.addr + "/portForward/default/web")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		if err := <-errc; err != nil {
			t.Errorf("ForwardPorts: %v", err)
		}
	}()
	<-ready
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "port 8080" {
		t.Errorf("forwarded %q, %v; want %q", got, err, "port 8080")
	}
	env.streamer.mu.Lock()
	defer env.streamer.mu.Unlock()
	if !slices.Equal(env.streamer.ids, []string{"cid-app", "sandbox-web"}) {
		t.Errorf("streamer asked for %q", env.streamer.ids)
	}
}
