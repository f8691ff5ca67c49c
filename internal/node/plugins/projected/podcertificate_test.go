package projected

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"volplane/internal/node/plugins"
	"volplane/internal/node/plugins/podcert"
)

const testChain = "junk before\n-----BEGIN CERTIFICATE-----\nHeader: x\n\nQUFBQQ==\n-----END CERTIFICATE-----\n"

func podCertEnv(t *testing.T) (*env, *record.FakeRecorder, chan struct{}) {
	t.Helper()
	e := newEnv(t,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "shop", UID: "sa-uid"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}},
	)
	n := 0
	e.client.PrependReactor("create", "podcertificaterequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n++
		pcr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.PodCertificateRequest)
		pcr.Name = pcr.GenerateName + string(rune('a'+n))
		return false, nil, nil // the fake's tracker stores it
	})
	watching := make(chan struct{}, 4)
	e.client.PrependWatchReactor("podcertificaterequests", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := e.client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		watching <- struct{}{}
		return true, w, err
	})
	rec := record.NewFakeRecorder(16)
	certs, err := podcert.New(podcert.Config{Client: e.client, NodeName: "n1", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	e.plugin = New(Config{Objects: e.plugin.cfg.Objects, Tokens: e.plugin.cfg.Tokens, Certificates: certs})
	if err := e.plugin.Init(&plugins.Host{RootDir: e.root, NodeName: "n1", Ops: e.host, Client: e.client}); err != nil {
		t.Fatal(err)
	}
	e.plugin.OnChange(func(v string) { e.changed <- v })
	return e, rec, watching
}

func certVolume() *corev1.Volume {
	return &corev1.Volume{Name: "cert", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources: []corev1.VolumeProjection{{PodCertificate: &corev1.PodCertificateProjection{
			SignerName: "example.com/issuer", KeyType: "ECDSAP256", MaxExpirationSeconds: ptr(int32(3600)),
			CredentialBundlePath: "bundle.pem", KeyPath: "key.pem", CertificateChainPath: "chain.pem",
		}}},
	}}}
}

func onlyPCR(t *testing.T, e *env) *certificatesv1.PodCertificateRequest {
	t.Helper()
	list, err := e.client.CertificatesV1().PodCertificateRequests("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("PodCertificateRequests: %v, %v", list, err)
	}
	return &list.Items[0]
}

func TestPodCertificateIssued(t *testing.T) {
	ctx := context.Background()
	e, rec, watching := podCertEnv(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	args := setUpArgs(e.root, certVolume(), pod)

	err := e.plugin.SetUp(ctx, args)
	if !errors.Is(err, podcert.ErrPending) {
		t.Fatalf("SetUp before the signer answered = %v, want pending", err)
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning CertificatePending ") || !strings.Contains(ev, `"example.com/issuer"`) {
		t.Errorf("event %q", ev)
	}
	if mps, _ := e.host.Mounts(); len(mps) != 0 {
		t.Errorf("a waiting volume left mounts: %+v", mps)
	}
	pcr := onlyPCR(t, e)
	want := certificatesv1.PodCertificateRequestSpec{
		SignerName: "example.com/issuer", PodName: "web", PodUID: "u1", ServiceAccountName: "default", ServiceAccountUID: "sa-uid",
		NodeName: "n1", NodeUID: "node-uid", MaxExpirationSeconds: ptr(int32(3600)), StubPKCS10Request: pcr.Spec.StubPKCS10Request,
	}
	if !reflect.DeepEqual(pcr.Spec, want) || len(pcr.OwnerReferences) != 1 || pcr.OwnerReferences[0].UID != "u1" {
		t.Errorf("request %+v", pcr)
	}
	csr, err := x509.ParseCertificateRequest(pcr.Spec.StubPKCS10Request)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("stub PKCS#10 request: %v", err)
	}

	<-watching
	pcr.Status = certificatesv1.PodCertificateRequestStatus{
		Conditions:       []metav1.Condition{{Type: certificatesv1.PodCertificateRequestConditionTypeIssued, Status: metav1.ConditionTrue, Reason: "Issued", LastTransitionTime: metav1.Now()}},
		CertificateChain: testChain,
		BeginRefreshAt:   &metav1.Time{Time: time.Now().Add(time.Hour)},
		NotAfter:         &metav1.Time{Time: time.Now().Add(2 * time.Hour)},
	}
	if _, err := e.client.CertificatesV1().PodCertificateRequests("shop").UpdateStatus(ctx, pcr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		<-e.changed
		err := e.plugin.SetUp(ctx, args)
		if err == nil {
			break
		}
		if !errors.Is(err, podcert.ErrPending) {
			t.Fatal(err)
		}
	}
	keyPEM, _ := os.ReadFile(filepath.Join(args.Dir, "key.pem"))
	chain, _ := os.ReadFile(filepath.Join(args.Dir, "chain.pem"))
	bundle, _ := os.ReadFile(filepath.Join(args.Dir, "bundle.pem"))
	if string(chain) != "-----BEGIN CERTIFICATE-----\nQUFBQQ==\n-----END CERTIFICATE-----\n" {
		t.Errorf("chain not cleaned: %q", chain)
	}
	if string(bundle) != string(keyPEM)+string(chain) {
		t.Error("bundle is not key then chain")
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key.pem: %q", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := key.(crypto.Signer); !ok || !reflect.DeepEqual(pub.Public(), csr.PublicKey) {
		t.Error("the key in the volume is not the one the request proved")
	}
}

func TestPodCertificateDenied(t *testing.T) {
	ctx := context.Background()
	e, rec, watching := podCertEnv(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	args := setUpArgs(e.root, certVolume(), pod)
	if err := e.plugin.SetUp(ctx, args); !errors.Is(err, podcert.ErrPending) {
		t.Fatalf("SetUp = %v", err)
	}
	<-rec.Events
	<-watching
	pcr := onlyPCR(t, e)
	pcr.Status.Conditions = []metav1.Condition{{Type: "Denied", Status: metav1.ConditionTrue, Reason: "UnsupportedKeyType", Message: "use RSA", LastTransitionTime: metav1.Now()}}
	if _, err := e.client.CertificatesV1().PodCertificateRequests("shop").UpdateStatus(ctx, pcr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		err := e.plugin.SetUp(ctx, args)
		if errors.Is(err, podcert.ErrPending) {
			<-e.changed
			continue
		}
		if err == nil || err.Error() != `PodCertificateRequest was permanently denied: reason="UnsupportedKeyType" message="use RSA"` {
			t.Fatalf("SetUp after denial = %v", err)
		}
		break
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning Denied PodCertificateRequest shop/"+pcr.Name+" was denied") {
		t.Errorf("event %q", ev)
	}
}
