package controlplane

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Files under <data-dir>/pki. The directory is written whole on first
// start (into a temporary directory renamed into place), so a crash never
// leaves half a PKI behind.
const (
	caCert            = "ca.crt"
	caKey             = "ca.key"
	servingCert       = "apiserver.crt"
	servingKey        = "apiserver.key"
	kubeletClientCert = "apiserver-kubelet-client.crt"
	kubeletClientKey  = "apiserver-kubelet-client.key"
	saKey             = "sa.key"
	saPub             = "sa.pub"
	tokensFile        = "tokens.csv"
)

// Identity is a component's credential: a bearer token for a user in some
// groups. Each component has its own, with only the rights RBAC grants
// that user.
type Identity struct {
	User   string
	Groups []string
}

// The identities the control plane issues tokens for on first start.
var (
	AdminIdentity              = Identity{User: "volplane-admin", Groups: []string{"system:masters"}}
	ControllerManagerIdentity  = Identity{User: "system:kube-controller-manager"}
	VolplaneControllerIdentity = Identity{User: "system:volplane:controller-manager"}
	SchedulerIdentity          = Identity{User: "system:kube-scheduler"}
	// LocalProvisionerIdentity is the node agents' local static
	// provisioner: a node's own identity may not create PVs.
	LocalProvisionerIdentity = Identity{User: "system:volplane:local-provisioner"}
)

var issuedIdentities = []Identity{AdminIdentity, ControllerManagerIdentity, VolplaneControllerIdentity, SchedulerIdentity, LocalProvisionerIdentity}

// PKI is the control plane's key material, loaded from <data-dir>/pki.
type PKI struct {
	Dir    string
	CA     *x509.Certificate
	CAPEM  []byte
	caKey  crypto.Signer
	tokens map[string]string // user -> token
}

// CAFingerprint is the hex SHA-256 of the CA certificate. etcd remembers
// it, so that a data dir whose PKI does not match its etcd is refused.
func (p *PKI) CAFingerprint() string {
	sum := sha256.Sum256(p.CA.Raw)
	return hex.EncodeToString(sum[:])
}

// Token returns the bearer token of id.
func (p *PKI) Token(id Identity) (string, error) {
	t, ok := p.tokens[id.User]
	if !ok {
		return "", fmt.Errorf("pki %s: no token for %s", p.Dir, id.User)
	}
	return t, nil
}

// Path returns the path of a file in the PKI directory.
func (p *PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// LoadOrCreatePKI loads the PKI under dir, creating it whole if dir does
// not exist. The serving certificate is reissued from the CA whenever it
// does not cover hosts (the --listen address may change between starts),
// so servers that share a copy of the pki directory each serve a
// certificate for their own address.
//
// accept vets the PKI (against etcd) before a new one is put in place:
// if it fails, nothing is written.
func LoadOrCreatePKI(dir string, hosts []string, accept func(*PKI) error) (*PKI, error) {
	// A new PKI is made in a temporary dir, vetted there and only then
	// renamed into place.
	src := dir
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if src, err = os.MkdirTemp(filepath.Dir(dir), ".pki-"); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		defer os.RemoveAll(src)
		if err := createPKI(src); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	p, err := loadPKI(src)
	if err != nil {
		return nil, err
	}
	if err := accept(p); err != nil {
		return nil, err
	}
	if src != dir {
		if err := os.Rename(src, dir); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
		p.Dir = dir
	}
	if err := p.ensureServingCert(hosts); err != nil {
		return nil, err
	}
	return p, nil
}

// createPKI writes a new CA, keys and tokens into the empty directory tmp.
func createPKI(tmp string) error {
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ca, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "volplane-ca"}, key)
	if err != nil {
		return fmt.Errorf("pki: CA: %w", err)
	}
	if err := writeCertKey(tmp, caCert, caKey, ca, key); err != nil {
		return err
	}

	client, clientKey, err := issue(ca, key, pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	if err := writeCertKey(tmp, kubeletClientCert, kubeletClientKey, client, clientKey); err != nil {
		return err
	}

	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	saPEM, err := keyutil.MarshalPrivateKeyToPEM(sa)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(tmp, saKey), saPEM); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(tmp, saPub), pemBlock("PUBLIC KEY", pubDER)); err != nil {
		return err
	}

	if _, err := ensureTokens(tmp, nil); err != nil {
		return err
	}
	return syncDir(tmp)
}

func loadPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, tokens: map[string]string{}}
	var err error
	p.CAPEM, err = os.ReadFile(filepath.Join(dir, caCert))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certs, err := certutil.ParseCertsPEM(p.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", caCert, err)
	}
	p.CA = certs[0]
	key, err := keyutil.PrivateKeyFromFile(filepath.Join(dir, caKey))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s is not a signing key", caKey)
	}
	p.caKey = signer

	if p.tokens, err = ensureTokens(dir, readTokens); err != nil {
		return nil, err
	}
	return p, nil
}

// readTokens reads tokens.csv: user -> token.
func readTokens(dir string) (map[string]string, [][]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, tokensFile))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", tokensFile, err)
	}
	tokens := map[string]string{}
	for _, rec := range recs {
		if len(rec) < 3 {
			return nil, nil, fmt.Errorf("pki: %s: short record", tokensFile)
		}
		tokens[rec[1]] = rec[0]
	}
	return tokens, recs, nil
}

// ensureTokens makes tokens.csv hold a token for every issued identity:
// a data dir made by an older volplane gains the identities added since,
// and keeps every token it had. read is nil for a new PKI.
func ensureTokens(dir string, read func(string) (map[string]string, [][]string, error)) (map[string]string, error) {
	tokens, recs := map[string]string{}, [][]string(nil)
	if read != nil {
		var err error
		if tokens, recs, err = read(dir); err != nil {
			return nil, err
		}
	}
	added := false
	for _, id := range issuedIdentities {
		if _, ok := tokens[id.User]; ok {
			continue
		}
		tok := make([]byte, 32)
		if _, err := rand.Read(tok); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		// token,user,uid,"group1,group2" as --token-auth-file reads it.
		rec := []string{hex.EncodeToString(tok), id.User, "volplane-" + id.User}
		if len(id.Groups) > 0 {
			rec = append(rec, strings.Join(id.Groups, ","))
		}
		recs = append(recs, rec)
		tokens[id.User] = rec[0]
		added = true
	}
	if !added {
		return tokens, nil
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(recs); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(dir, tokensFile), buf.Bytes()); err != nil {
		return nil, err
	}
	return tokens, nil
}

// NodeClientCert issues node a client certificate from the cluster CA:
// user system:node:<node> in group system:nodes, as the Node authorizer
// and NodeRestriction expect. It returns the certificate and key as PEM.
func (p *PKI) NodeClientCert(node string) (certPEM, keyPEM []byte, err error) {
	cert, key, err := issue(p.CA, p.caKey, pkix.Name{CommonName: NodeUser(node), Organization: []string{NodesGroup}}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return pemBlock(certutil.CertificateBlockType, cert.Raw), keyPEM, nil
}

// ensureServingCert (re)issues the serving certificate unless the current
// one is signed by the CA, valid for a month more, and covers hosts.
func (p *PKI) ensureServingCert(hosts []string) error {
	var ips []net.IP
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	if certs, err := certutil.CertsFromFile(p.Path(servingCert)); err == nil && p.covers(certs[0], ips, dns) {
		return nil
	}
	cert, key, err := issue(p.CA, p.caKey, pkix.Name{CommonName: "kube-apiserver"}, &sans{ips: ips, dns: dns}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	return writeCertKey(p.Dir, servingCert, servingKey, cert, key)
}

func (p *PKI) covers(c *x509.Certificate, ips []net.IP, dns []string) bool {
	if c.CheckSignatureFrom(p.CA) != nil || time.Until(c.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	for _, d := range dns {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	return true
}

type sans struct {
	ips []net.IP
	dns []string
}

// issue signs a new key's certificate with the CA, valid for ten years.
func issue(ca *x509.Certificate, caKey crypto.Signer, subject pkix.Name, alt *sans, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if alt != nil {
		tmpl.IPAddresses, tmpl.DNSNames = alt.ips, alt.dns
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign %s: %w", subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return cert, key, nil
}

func writeCertKey(dir, certName, keyName string, cert *x509.Certificate, key crypto.PrivateKey) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(dir, keyName), keyPEM); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), pemBlock(certutil.CertificateBlockType, cert.Raw))
}
