package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestServingTemplate(t *testing.T) {
	tests := []struct {
		name    string
		addrs   []corev1.NodeAddress
		wantNil bool
		wantDNS []string
		wantIPs []string
	}{
		{name: "no address yet", wantNil: true},
		{name: "names only", addrs: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "host1"}}, wantNil: true},
		{
			name: "every kind",
			addrs: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "host1"},
				{Type: corev1.NodeInternalIP, Address: "10.0.0.5"},
				{Type: corev1.NodeExternalIP, Address: "2001:db8::1"},
				{Type: corev1.NodeInternalDNS, Address: "node-a.internal"},
				{Type: corev1.NodeExternalDNS, Address: "node-a.example.com"},
				{Type: corev1.NodeInternalIP, Address: "not-an-ip"},
				{Type: corev1.NodeInternalIP, Address: ""},
			},
			wantDNS: []string{"host1", "node-a", "node-a.example.com", "node-a.internal"},
			wantIPs: []string{"10.0.0.5", "2001:db8::1"},
		},
		{
			name: "a hostname that is an IP, duplicates",
			addrs: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "127.0.0.1"},
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: "node-a"},
			},
			wantDNS: []string{"node-a"},
			wantIPs: []string{"127.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := servingTemplate("node-a", tt.addrs)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("template %+v, want none", got)
				}
				return
			}
			if got.Subject.CommonName != "system:node:node-a" || !slices.Equal(got.Subject.Organization, []string{"system:nodes"}) {
				t.Errorf("subject %v", got.Subject)
			}
			var ips []string
			for _, ip := range got.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(got.DNSNames, tt.wantDNS) || !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("DNS %q IPs %q, want %q %q", got.DNSNames, ips, tt.wantDNS, tt.wantIPs)
			}
		})
	}
}

// TestServingCertManager: the manager asks for a kubelet-serving
// certificate with the node's subject, names and usages, and serves the
// one it is given from its file store.
func TestServingCertManager(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	cs := fake.NewClientset()
	var asked *x509.CertificateRequest
	var usages []certificatesv1.KeyUsage
	cs.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		if csr.Name == "" {
			csr.Name = csr.GenerateName + "1"
		}
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName {
			t.Errorf("signer %q", csr.Spec.SignerName)
			return false, nil, nil
		}
		block, _ := pem.Decode(csr.Spec.Request)
		req, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Error(err)
			return false, nil, nil
		}
		asked, usages = req, csr.Spec.Usages
		// Approve and sign at once, as the approver and the signer would.
		der := ca.sign(t, &x509.Certificate{
			Subject:     req.Subject,
			DNSNames:    req.DNSNames,
			IPAddresses: req.IPAddresses,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}, req.PublicKey)
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		csr.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		return false, nil, nil // the tracker stores it as changed here
	})
	dir := filepath.Join(t.TempDir(), "pki")
	m, err := NewServingCertManager(ServingCertConfig{
		Client:   cs,
		NodeName: "node-a",
		Addresses: func() []corev1.NodeAddress {
			return []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: "node-a"}}
		},
		Dir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	get := GetCertificate(m)
	if _, err := get(nil); err == nil {
		t.Fatal("a certificate before any was issued")
	}
	m.Start()
	defer m.Stop()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return m.Current() != nil, nil
	}); err != nil {
		t.Fatalf("no certificate: %v", err)
	}
	if asked == nil || asked.Subject.CommonName != "system:node:node-a" || !slices.Equal(asked.Subject.Organization, []string{"system:nodes"}) ||
		!slices.Equal(asked.DNSNames, []string{"node-a"}) || len(asked.IPAddresses) != 1 || !asked.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("CSR %+v", asked)
	}
	if !slices.Equal(usages, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}) {
		t.Errorf("usages %q", usages)
	}
	cert, err := get(nil)
	if err != nil || cert.Leaf == nil || cert.Leaf.Subject.CommonName != "system:node:node-a" {
		t.Fatalf("served %v, %v", cert, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ServingCertPairPrefix+"-current.pem")); err != nil {
		t.Errorf("certificate not stored: %v", err)
	}
}
