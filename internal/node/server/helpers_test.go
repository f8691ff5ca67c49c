package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const testNode = "node-a"

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue signs a key pair for tmpl and returns it as PEM (certificate,
// key) and as a tls.Certificate.
func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ca.sign(t, tmpl, key.Public())
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// sign issues a certificate for pub from tmpl, valid for an hour.
func (ca *testCA) sign(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (ca *testCA) clientCert(t *testing.T, user string, groups ...string) (certPEM, keyPEM []byte, pair tls.Certificate) {
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// policy is the fake API server's view of who may do what: tokens map to
// users, and allow answers SubjectAccessReviews.
type policy struct {
	mu     sync.Mutex
	tokens map[string]authenticationv1.UserInfo
	allow  func(user string, attrs *authorizationv1.ResourceAttributes) bool
	// reviews records every SubjectAccessReview asked, as
	// "user verb resource/subresource name".
	reviews []string
}

func (p *policy) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		p.mu.Lock()
		defer p.mu.Unlock()
		if u, ok := p.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reviews = append(p.reviews, fmt.Sprintf("%s %s %s/%s %s", sar.Spec.User, ra.Verb, ra.Resource, ra.Subresource, ra.Name))
		sar.Status.Allowed = p.allow != nil && p.allow(sar.Spec.User, ra)
		return true, sar, nil
	})
	return cs
}

func (p *policy) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reviews...)
}

// fakeProvider serves fixed pods; logs are files under a directory.
type fakeProvider struct {
	pods     []*corev1.Pod
	logs     map[string]LogFile // "ns/pod/container[/previous]"
	logErr   error
	running  func(id string) bool
	ids      map[string]string // "ns/pod/container" -> runtime ID
	sandbox  map[types.UID]string
	mu       sync.Mutex
	runCalls int
}

func (f *fakeProvider) Pods() []*corev1.Pod { return f.pods }

func (f *fakeProvider) Pod(ns, name string) (*corev1.Pod, bool) {
	for _, p := range f.pods {
		if p.Namespace == ns && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

func (f *fakeProvider) ContainerLog(_ context.Context, pod *corev1.Pod, container string, previous bool) (LogFile, error) {
	key := pod.Namespace + "/" + pod.Name + "/" + container
	if previous {
		key += "/previous"
	}
	if lf, ok := f.logs[key]; ok {
		return lf, nil
	}
	if f.logErr != nil {
		return LogFile{}, f.logErr
	}
	return LogFile{}, fmt.Errorf("container %q in pod %q is waiting to start: ContainerCreating", container, pod.Name)
}

func (f *fakeProvider) ContainerRunning(_ context.Context, id string) (bool, error) {
	f.mu.Lock()
	f.runCalls++
	f.mu.Unlock()
	return f.running != nil && f.running(id), nil
}

func (f *fakeProvider) ContainerID(_ context.Context, pod *corev1.Pod, container string) (string, error) {
	if id, ok := f.ids[pod.Namespace+"/"+pod.Name+"/"+container]; ok {
		return id, nil
	}
	return "", fmt.Errorf("container %s: %w", container, ErrNotFound)
}

func (f *fakeProvider) PodSandboxID(_ context.Context, pod *corev1.Pod) (string, error) {
	if id, ok := f.sandbox[pod.UID]; ok {
		return id, nil
	}
	return "", ErrNotFound
}

// fakeStreamer runs a tiny command language in place of a container:
// "echo ARGS..." writes its arguments, "cat" copies stdin to stdout,
// "stderr TEXT" writes TEXT to stderr, "exit N" fails with exit code N.
// It records the container IDs it was asked about.
type fakeStreamer struct {
	mu  sync.Mutex
	ids []string
}

func (s *fakeStreamer) record(id string) {
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
}

func (s *fakeStreamer) Exec(_ context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	s.record(id)
	if len(cmd) == 0 {
		return fmt.Errorf("no command")
	}
	switch cmd[0] {
	case "echo":
		_, err := fmt.Fprintln(out, cmd[1:])
		return err
	case "cat":
		_, err := io.Copy(out, in)
		return err
	case "stderr":
		_, err := fmt.Fprint(errOut, cmd[1])
		return err
	case "exit":
		var code int
		fmt.Sscan(cmd[1], &code)
		return exitError(code)
	}
	return fmt.Errorf("unknown command %q", cmd[0])
}

func (s *fakeStreamer) Attach(_ context.Context, id string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	s.record(id)
	_, err := io.Copy(out, in)
	return err
}

func (s *fakeStreamer) PortForward(_ context.Context, sandbox string, port int32, stream io.ReadWriteCloser) error {
	s.record(sandbox)
	defer stream.Close()
	_, err := fmt.Fprintf(stream, "port %d", port)
	return err
}

// testPod is a pod with one container "app" and an init container.
func testPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(name + "-uid")},
		Spec: corev1.PodSpec{
			NodeName:       testNode,
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "app"}},
		},
	}
}

// testEnv is a running server with its CA, policy and fakes.
type testEnv struct {
	ca       *testCA
	policy   *policy
	provider *fakeProvider
	streamer *fakeStreamer
	addr     string
}

// admin is a user the policy allows everything; its client certificate
// and token are ready in every test environment.
const (
	adminUser  = "kube-apiserver-kubelet-client"
	adminToken = "admin-token"
)

func startServer(t *testing.T, provider *fakeProvider) *testEnv {
	t.Helper()
	env := &testEnv{
		ca: newTestCA(t, "cluster-ca"),
		policy: &policy{
			tokens: map[string]authenticationv1.UserInfo{adminToken: {Username: adminUser}},
			allow:  func(user string, _ *authorizationv1.ResourceAttributes) bool { return user == adminUser },
		},
		provider: provider,
		streamer: &fakeStreamer{},
	}
	_, _, serving := env.ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:node:" + testNode},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	s, err := New(Config{
		Listen:         "127.0.0.1:0",
		NodeName:       testNode,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		ClientCAs:      env.ca.pool(),
		Client:         env.policy.client(),
		Provider:       provider,
		Streamer:       env.streamer,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return env
}

// httpClient trusts the test CA and presents certs, if any.
func (env *testEnv) httpClient(certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      env.ca.pool(),
		Certificates: certs,
	}}}
}

// get makes a request as token (none when empty) and returns the status
// and body.
func (env *testEnv) do(t *testing.T, c *http.Client, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+env.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// writeLog writes a CRI log file and returns its path.
func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exitError is how a Streamer reports a command that exited non-zero.
func exitError(code int) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
}
