package projected

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/objectcache"
	"volplane/internal/node/plugins/token"
)

func ptr[T any](v T) *T { return &v }

// manualTimers records the refreshes the token manager schedules.
type manualTimers struct {
	mu  sync.Mutex
	fns []func()
}

type stopper struct{}

func (stopper) Stop() bool { return true }

func (m *manualTimers) after(d time.Duration, f func()) token.Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fns = append(m.fns, f)
	return stopper{}
}

func (m *manualTimers) fireLast() {
	m.mu.Lock()
	f := m.fns[len(m.fns)-1]
	m.mu.Unlock()
	f()
}

type env struct {
	client   *fake.Clientset
	host     *fakehost.Host
	plugin   *Plugin
	timers   *manualTimers
	requests []*authenticationv1.TokenRequest
	reqMu    sync.Mutex
	changed  chan string
	root     string
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{client: fake.NewClientset(objs...), host: fakehost.New(), timers: &manualTimers{}, changed: make(chan string, 16), root: t.TempDir()}
	e.client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		e.reqMu.Lock()
		e.requests = append(e.requests, tr.DeepCopy())
		n := len(e.requests)
		e.reqMu.Unlock()
		tr.Status.Token = fmt.Sprintf("token-%d", n)
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
		return true, tr, nil
	})
	tokens, err := token.New(token.Config{Client: e.client, AfterFunc: e.timers.after})
	if err != nil {
		t.Fatal(err)
	}
	e.plugin = New(Config{Objects: objectcache.New(e.client, nil), Tokens: tokens})
	if err := e.plugin.Init(&plugins.Host{RootDir: e.root, NodeName: "n1", Ops: e.host, Client: e.client}); err != nil {
		t.Fatal(err)
	}
	e.plugin.OnChange(func(v string) { e.changed <- v })
	return e
}

// kubeAPIAccess is the volume the ServiceAccount admission plugin adds
// to every pod.
func kubeAPIAccess() *corev1.Volume {
	return &corev1.Volume{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr(int64(3607)), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

func setUpArgs(root string, vol *corev1.Volume, pod *corev1.Pod) plugins.SetUpArgs {
	return plugins.SetUpArgs{
		Spec: &plugins.Spec{Name: vol.Name, Volume: vol},
		Pod:  pod,
		Dir:  filepath.Join(root, "pods", string(pod.UID), "volumes/kubernetes.io~projected", vol.Name),
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKubeAPIAccess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "shop"}, Data: map[string]string{"ca.crt": "CA PEM"}})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}, Spec: corev1.PodSpec{ServiceAccountName: "builder"}}
	args := setUpArgs(e.root, kubeAPIAccess(), pod)
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"token": "token-1", "ca.crt": "CA PEM", "namespace": "shop"} {
		if got := read(t, filepath.Join(args.Dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	mps, _ := e.host.Mounts()
	if len(mps) != 1 || mps[0].Path != args.Dir || mps[0].FSType != "tmpfs" {
		t.Errorf("projected volume not on a tmpfs at its directory: %+v", mps)
	}
	if len(e.requests) != 1 {
		t.Fatalf("%d token requests", len(e.requests))
	}
	spec := e.requests[0].Spec
	if ref := spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.Name != "web" || ref.UID != "u1" || ref.APIVersion != "v1" {
		t.Errorf("token not bound to the pod: %+v", ref)
	}
	if spec.ExpirationSeconds == nil || *spec.ExpirationSeconds != 3607 || len(spec.Audiences) != 0 {
		t.Errorf("token request spec %+v", spec)
	}
	for _, a := range e.client.Actions() {
		if a.GetSubresource() == "token" {
			if ca := a.(k8stesting.CreateActionImpl); ca.Name != "builder" || ca.Namespace != "shop" {
				t.Errorf("token requested for service account %s/%s, want shop/builder", ca.Namespace, ca.Name)
			}
		}
	}

	// A second SetUp within the token's life asks for nothing new.
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	if len(e.requests) != 1 {
		t.Errorf("token requested again before it was due (%d requests)", len(e.requests))
	}
	// The refresh timer reports the volume; SetUp then writes a new token.
	e.timers.fireLast()
	name, _ := e.plugin.VolumeName(args.Spec, args.Pod)
	if got := <-e.changed; got != name {
		t.Fatalf("refresh reported %q, want %q", got, name)
	}
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	// The manual clock did not move, so the manager must know the token
	// is due from the timer having fired, not from the clock.
	if got := read(t, filepath.Join(args.Dir, "token")); got != "token-2" {
		t.Errorf("token after refresh = %q, want token-2", got)
	}

	if err := e.plugin.TearDown(ctx, args.Dir); err != nil {
		t.Fatal(err)
	}
	if mps, _ := e.host.Mounts(); len(mps) != 0 {
		t.Errorf("mounts after TearDown: %+v", mps)
	}
	if n := e.plugin.cfg.Tokens.Cached(); n != 0 {
		t.Errorf("%d tokens kept after TearDown", n)
	}
}

func TestErrorsOfAllSources(t *testing.T) {
	e := newEnv(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	vol := &corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "opt"}, Optional: ptr(true)}},
		},
	}}}
	err := e.plugin.SetUp(context.Background(), setUpArgs(e.root, vol, pod))
	if err == nil || err.Error() != `[configmap "cm" not found, secret "s" not found]` {
		t.Errorf("SetUp = %v", err)
	}
	if mps, _ := e.host.Mounts(); len(mps) != 0 {
		t.Errorf("a failed SetUp left mounts: %+v", mps)
	}
}

func TestFsUserAndGroupMakeTokenPrivate(t *testing.T) {
	e := newEnv(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000))}, Containers: []corev1.Container{{Name: "a"}}}}
	vol := &corev1.Volume{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources:     []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "t", Audience: "vault"}}},
	}}}
	args := setUpArgs(e.root, vol, pod)
	if err := e.plugin.SetUp(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(args.Dir, "t"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token of a pod running as one user: mode %v, want 0600", st.Mode())
	}
	if got := e.requests[0].Spec.Audiences; len(got) != 1 || got[0] != "vault" {
		t.Errorf("audiences %v", got)
	}
}

func TestFsUserFrom(t *testing.T) {
	sc := func(u int64) *corev1.SecurityContext { return &corev1.SecurityContext{RunAsUser: &u} }
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want *int64
	}{
		{"nothing set", corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}, nil},
		{"pod user", corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr(int64(7))}, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}, ptr(int64(7))},
		{"containers agree", corev1.PodSpec{Containers: []corev1.Container{{Name: "a", SecurityContext: sc(5)}, {Name: "b", SecurityContext: sc(5)}}}, ptr(int64(5))},
		{"containers differ", corev1.PodSpec{Containers: []corev1.Container{{Name: "a", SecurityContext: sc(5)}, {Name: "b", SecurityContext: sc(6)}}}, nil},
		{"one container unset", corev1.PodSpec{Containers: []corev1.Container{{Name: "a", SecurityContext: sc(5)}, {Name: "b"}}}, nil},
		{"init container differs", corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i", SecurityContext: sc(0)}}, Containers: []corev1.Container{{Name: "a", SecurityContext: sc(5)}}}, nil},
	} {
		got := FsUserFrom(&corev1.Pod{Spec: tc.spec})
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: FsUserFrom = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClusterTrustBundle(t *testing.T) {
	pemA := "-----BEGIN CERTIFICATE-----\nQUFBQQ==\n-----END CERTIFICATE-----\n"
	pemB := "-----BEGIN CERTIFICATE-----\nQkJCQg==\n-----END CERTIFICATE-----\n"
	e := newEnv(t,
		&certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "one"}, Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: pemA}},
		&certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "example.com:signer:x", Labels: map[string]string{"env": "prod"}}, Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/signer", TrustBundle: pemB + pemA}},
		&certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: "example.com:signer:y", Labels: map[string]string{"env": "dev"}}, Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: "example.com/signer", TrustBundle: pemA}},
	)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	vol := &corev1.Volume{Name: "trust", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources: []corev1.VolumeProjection{
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr("one"), Path: "by-name.pem"}},
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{SignerName: ptr("example.com/signer"), LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, Path: "prod.pem"}},
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{SignerName: ptr("example.com/signer"), LabelSelector: &metav1.LabelSelector{}, Path: "all.pem"}},
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr("missing"), Optional: ptr(true), Path: "missing.pem"}},
		},
	}}}
	args := setUpArgs(e.root, vol, pod)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.plugin.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"by-name.pem": pemA, "prod.pem": pemA + pemB, "all.pem": pemA + pemB, "missing.pem": ""} {
		if got := read(t, filepath.Join(args.Dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	vol.Projected.Sources = []corev1.VolumeProjection{{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{SignerName: ptr("other/signer"), Path: "x.pem"}}}
	err := e.plugin.SetUp(ctx, args)
	if err == nil || !strings.Contains(err.Error(), "combination of signerName and labelSelector matched zero ClusterTrustBundles") {
		t.Errorf("SetUp with no matching bundle = %v", err)
	}
}
