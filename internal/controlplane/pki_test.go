package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

func servingCertOf(t *testing.T, p *PKI) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(p.Path(servingCert))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestPKICreatedWholeThenLoaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != dir {
		t.Fatalf("PKI dir %s, want %s", p.Dir, dir)
	}
	for _, f := range []string{caCert, caKey, servingCert, servingKey, kubeletClientCert, kubeletClientKey, saKey, saPub, tokensFile} {
		st, err := os.Stat(p.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("pki dir mode %v, want 0700", st.Mode().Perm())
	}
	tokens := map[string]bool{}
	for _, id := range issuedIdentities {
		tok, err := p.Token(id)
		if err != nil || len(tok) < 32 || tokens[tok] {
			t.Fatalf("token of %s: %q %v (each component needs its own)", id.User, tok, err)
		}
		tokens[tok] = true
	}
	cert := servingCertOf(t, p)
	if err := cert.CheckSignatureFrom(p.CA); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.IPAddresses, net.ParseIP("127.0.0.1").Equal) || !slices.Contains(cert.DNSNames, "kubernetes.default.svc") {
		t.Fatalf("serving cert SANs %v %v", cert.IPAddresses, cert.DNSNames)
	}

	again, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if again.CAFingerprint() != p.CAFingerprint() {
		t.Fatal("reloading made a new CA")
	}
	if !servingCertOf(t, again).Equal(cert) {
		t.Fatal("serving cert reissued although it covers the hosts")
	}
	if tok, _ := again.Token(AdminIdentity); !tokens[tok] {
		t.Fatal("admin token changed across loads")
	}
}

// A new --listen address gets a serving certificate for it from the same
// CA; the old names stay covered.
func TestPKIServingCertFollowsListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	p2, err := LoadOrCreatePKI(dir, []string{"10.1.2.3", "127.0.0.1", "node-a"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	cert := servingCertOf(t, p2)
	if p2.CAFingerprint() != p.CAFingerprint() || cert.CheckSignatureFrom(p.CA) != nil {
		t.Fatal("new serving cert is not from the same CA")
	}
	if !slices.ContainsFunc(cert.IPAddresses, net.ParseIP("10.1.2.3").Equal) || !slices.Contains(cert.DNSNames, "node-a") {
		t.Fatalf("serving cert SANs %v %v lack the new address", cert.IPAddresses, cert.DNSNames)
	}
}

// A PKI the etcd check refuses is not kept: nothing half-written.
func TestPKIRefusedIsNotKept(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "pki")
	refuse := errors.New("does not match")
	if _, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("err = %v, want the accept error", err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("refused PKI left %v behind", entries)
	}
}

func TestFirstServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{"10.43.0.0/16": "10.43.0.1", "10.96.0.0/12": "10.96.0.1", "fd00:10::/108": "fd00:10::1"} {
		if got := firstServiceIP(cidr); got != want {
			t.Errorf("firstServiceIP(%s) = %s, want %s", cidr, got, want)
		}
	}
}

// A data dir made before an identity was added gains a token for it and
// keeps every token it had (loadPKI once refused such a tokens file).
func TestPKIOlderTokensFileGainsNewIdentities(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := p.Token(AdminIdentity)
	// The file as an older volplane wrote it: without the scheduler.
	_, recs, err := readTokens(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs = slices.DeleteFunc(recs, func(r []string) bool { return r[1] == SchedulerIdentity.User })
	var old strings.Builder
	w := csv.NewWriter(&old)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tokensFile), []byte(old.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	again, err := LoadOrCreatePKI(dir, []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatalf("older tokens file refused: %v", err)
	}
	if tok, _ := again.Token(AdminIdentity); tok != admin {
		t.Fatal("admin token changed")
	}
	sched, err := again.Token(SchedulerIdentity)
	if err != nil || len(sched) < 32 {
		t.Fatalf("scheduler token %q: %v", sched, err)
	}
	// And it is on disk, for kube-apiserver's --token-auth-file.
	onDisk, _, err := readTokens(dir)
	if err != nil || onDisk[SchedulerIdentity.User] != sched {
		t.Fatalf("scheduler token not written: %v", err)
	}
}

// A node's client certificate is system:node:<name> in system:nodes,
// signed by the cluster CA, for client auth only.
func TestNodeClientCert(t *testing.T) {
	p, err := LoadOrCreatePKI(filepath.Join(t.TempDir(), "pki"), []string{"127.0.0.1"}, func(*PKI) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.NodeClientCert("node-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != "system:node:node-a" || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}) {
		t.Fatalf("subject %v", c.Subject)
	}
	if c.CheckSignatureFrom(p.CA) != nil || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatal("not a client certificate of the cluster CA")
	}
}
