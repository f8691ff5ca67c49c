package csrapprover

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// csrSpec describes a test CSR; the zero value is a good request from
// node-a for its name and 10.0.0.5.
type csrSpec struct {
	username string
	groups   []string
	subject  *pkix.Name
	dns      []string
	ips      []string
	emails   []string
	uris     []string
	usages   []certificatesv1.KeyUsage
	signer   string
	request  []byte // replaces the generated request
	tamper   bool   // break the request's signature
}

func makeCSR(t *testing.T, s csrSpec) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	if s.username == "" {
		s.username = "system:node:node-a"
	}
	if s.groups == nil {
		s.groups = []string{"system:nodes", "system:authenticated"}
	}
	if s.subject == nil {
		s.subject = &pkix.Name{CommonName: s.username, Organization: []string{"system:nodes"}}
	}
	if s.dns == nil && s.ips == nil {
		s.dns, s.ips = []string{"node-a"}, []string{"10.0.0.5"}
	}
	if s.usages == nil {
		s.usages = servingUsages
	}
	if s.signer == "" {
		s.signer = certificatesv1.KubeletServingSignerName
	}
	tmpl := &x509.CertificateRequest{Subject: *s.subject, DNSNames: s.dns, EmailAddresses: s.emails}
	for _, ip := range s.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range s.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	if s.tamper {
		der[len(der)-3] ^= 0xff
	}
	req := s.request
	if req == nil {
		req = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    req,
			SignerName: s.signer,
			Usages:     s.usages,
			Username:   s.username,
			Groups:     s.groups,
		},
	}
}

func nodeA() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "10.0.0.5"},
			{Type: corev1.NodeExternalIP, Address: "2001:db8::5"},
			{Type: corev1.NodeHostName, Address: "host-a"},
			{Type: corev1.NodeInternalDNS, Address: "node-a.internal"},
			{Type: corev1.NodeHostName, Address: "192.168.1.5"},
		}},
	}
}

func TestDecide(t *testing.T) {
	otherNode := nodeA()
	otherNode.Name = "node-b"
	tests := []struct {
		name    string
		spec    csrSpec
		node    *corev1.Node
		wantErr string // "" approves
	}{
		{name: "name and internal IP", node: nodeA()},
		{name: "every kind of address", node: nodeA(), spec: csrSpec{
			dns: []string{"node-a", "host-a", "node-a.internal"},
			ips: []string{"10.0.0.5", "2001:db8::5", "192.168.1.5"},
		}},
		{name: "DNS only", node: nodeA(), spec: csrSpec{dns: []string{"host-a"}}},
		{name: "IP only", node: nodeA(), spec: csrSpec{ips: []string{"10.0.0.5"}}},
		{name: "RSA usages", node: nodeA(), spec: csrSpec{usages: servingUsagesWithKE}},
		{name: "usages in another order, repeated", node: nodeA(), spec: csrSpec{usages: []certificatesv1.KeyUsage{
			certificatesv1.UsageServerAuth, certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}}},

		{name: "requester not a node", node: nodeA(), spec: csrSpec{username: "system:bootstrap:abcdef", subject: &pkix.Name{CommonName: "system:node:node-a", Organization: []string{"system:nodes"}}},
			wantErr: "is not a node"},
		{name: "requester not in system:nodes", node: nodeA(), spec: csrSpec{groups: []string{"system:authenticated"}}, wantErr: "is not in system:nodes"},
		{name: "subject of another node", node: nodeA(), spec: csrSpec{subject: &pkix.Name{CommonName: "system:node:node-b", Organization: []string{"system:nodes"}}},
			wantErr: "subject"},
		{name: "subject without the group", node: nodeA(), spec: csrSpec{subject: &pkix.Name{CommonName: "system:node:node-a"}}, wantErr: "subject"},
		{name: "subject with more groups", node: nodeA(), spec: csrSpec{subject: &pkix.Name{CommonName: "system:node:node-a", Organization: []string{"system:nodes", "system:masters"}}},
			wantErr: "subject"},
		{name: "subject with more fields", node: nodeA(), spec: csrSpec{subject: &pkix.Name{CommonName: "system:node:node-a", Organization: []string{"system:nodes"}, OrganizationalUnit: []string{"x"}}},
			wantErr: "subject"},
		{name: "client usage", node: nodeA(), spec: csrSpec{usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}},
			wantErr: "usages"},
		{name: "server and client usage", node: nodeA(), spec: csrSpec{usages: []certificatesv1.KeyUsage{
			certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth, certificatesv1.UsageClientAuth}}, wantErr: "usages"},
		{name: "no digital signature", node: nodeA(), spec: csrSpec{usages: []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth}}, wantErr: "usages"},
		{name: "an email name", node: nodeA(), spec: csrSpec{emails: []string{"a@b.c"}}, wantErr: "email or URI"},
		{name: "a URI name", node: nodeA(), spec: csrSpec{uris: []string{"spiffe://x/y"}}, wantErr: "email or URI"},
		{name: "no names", node: nodeA(), spec: csrSpec{dns: []string{}, ips: []string{}}, wantErr: "no DNS name or IP"},
		{name: "DNS name not the node's", node: nodeA(), spec: csrSpec{dns: []string{"node-a", "kubernetes.default.svc"}}, wantErr: `DNS name "kubernetes.default.svc"`},
		{name: "another node's name", node: nodeA(), spec: csrSpec{dns: []string{"node-b"}}, wantErr: `DNS name "node-b"`},
		{name: "IP not the node's", node: nodeA(), spec: csrSpec{ips: []string{"10.0.0.5", "10.0.0.6"}}, wantErr: "IP 10.0.0.6"},
		{name: "IP asked as a DNS name", node: nodeA(), spec: csrSpec{dns: []string{"10.0.0.5"}}, wantErr: `DNS name "10.0.0.5"`},
		{name: "loopback not reported", node: nodeA(), spec: csrSpec{ips: []string{"127.0.0.1"}}, wantErr: "IP 127.0.0.1"},
		{name: "no node", spec: csrSpec{}, wantErr: `node "node-a" does not exist`},
		{name: "another node's object", node: otherNode, wantErr: "is not the requester"},
		{name: "not PEM", node: nodeA(), spec: csrSpec{request: []byte("hello")}, wantErr: "not a PEM"},
		{name: "bad signature", node: nodeA(), spec: csrSpec{tamper: true}, wantErr: "request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decide(makeCSR(t, tt.spec), tt.node)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("left pending: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("approved, want pending for %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("pending for %q, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestSync runs the controller's sync against a fake API: only a good
// pending kubelet-serving CSR is approved, through the approval
// subresource, and a CSR that waited for its Node's addresses is
// approved once they appear.
func TestSync(t *testing.T) {
	approved := func(csr *certificatesv1.CertificateSigningRequest) *certificatesv1.CertificateSigningRequest {
		csr = csr.DeepCopy()
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		return csr
	}
	good := makeCSR(t, csrSpec{})
	tests := []struct {
		name        string
		csr         *certificatesv1.CertificateSigningRequest
		node        *corev1.Node
		wantApprove bool
	}{
		{name: "good", csr: good, node: nodeA(), wantApprove: true},
		{name: "already approved", csr: approved(good), node: nodeA()},
		{name: "client signer", csr: makeCSR(t, csrSpec{signer: certificatesv1.KubeAPIServerClientKubeletSignerName}), node: nodeA()},
		{name: "bad names", csr: makeCSR(t, csrSpec{dns: []string{"evil"}}), node: nodeA()},
		{name: "no node yet", csr: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := fake.NewClientset(tt.csr)
			factory := informers.NewSharedInformerFactory(cs, 0)
			c, err := New(cs, factory)
			if err != nil {
				t.Fatal(err)
			}
			if err := factory.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer().Add(tt.csr); err != nil {
				t.Fatal(err)
			}
			if tt.node != nil {
				if err := factory.Core().V1().Nodes().Informer().GetIndexer().Add(tt.node); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.sync(ctx, tt.csr.Name); err != nil {
				t.Fatal(err)
			}
			var approvals []*certificatesv1.CertificateSigningRequest
			for _, a := range cs.Actions() {
				if a.GetVerb() == "update" && a.GetSubresource() == "approval" {
					approvals = append(approvals, a.(k8stesting.UpdateAction).GetObject().(*certificatesv1.CertificateSigningRequest))
				}
			}
			if !tt.wantApprove {
				if len(approvals) != 0 {
					t.Errorf("approved: %+v", approvals[0].Status)
				}
				return
			}
			if len(approvals) != 1 {
				t.Fatalf("%d approvals, want 1", len(approvals))
			}
			conds := approvals[0].Status.Conditions
			if len(conds) != 1 || conds[0].Type != certificatesv1.CertificateApproved || conds[0].Status != corev1.ConditionTrue || conds[0].Reason != ApprovedReason {
				t.Errorf("conditions %+v", conds)
			}
		})
	}
}

// TestNodeRequeues: a node's update queues its pending serving CSRs and
// no one else's.
func TestNodeRequeues(t *testing.T) {
	cs := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(cs, factory)
	if err != nil {
		t.Fatal(err)
	}
	idx := factory.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer()
	mine := makeCSR(t, csrSpec{})
	theirs := makeCSR(t, csrSpec{username: "system:node:node-b"})
	theirs.Name = "csr-2"
	done := makeCSR(t, csrSpec{})
	done.Name = "csr-3"
	done.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}}
	for _, o := range []*certificatesv1.CertificateSigningRequest{mine, theirs, done} {
		if err := idx.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	c.onNode(nodeA())
	if n := c.queue.Len(); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
	if key, _ := c.queue.Get(); key != mine.Name {
		t.Errorf("queued %q, want %q", key, mine.Name)
	}
}
