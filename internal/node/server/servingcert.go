package server

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"
)

// ServingCertPairPrefix names the serving certificate's files in
// ServingCertConfig.Dir: kubelet-server-current.pem (a symlink to the
// newest kubelet-server-<date>.pem, certificate and key), as the
// kubelet's.
const ServingCertPairPrefix = "kubelet-server"

// ServingCertConfig configures the serving certificate manager.
type ServingCertConfig struct {
	// Client reaches the API server as this node (system:node:<name>):
	// the CSR's requester is whoever this client authenticates as.
	Client kubernetes.Interface
	// NodeName is this node's name.
	NodeName string
	// Addresses returns the node's addresses as it reports them in its
	// Node's status.addresses; the certificate names them.
	Addresses func() []corev1.NodeAddress
	// Dir holds the certificate and key (<root>/pki).
	Dir string
}

// Validate checks c.
func (c *ServingCertConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("serving certificate: no API client")
	case c.NodeName == "":
		return errors.New("serving certificate: no node name")
	case c.Addresses == nil:
		return errors.New("serving certificate: no node addresses")
	case c.Dir == "":
		return errors.New("serving certificate: no directory")
	}
	return nil
}

// NewServingCertManager returns the kubelet's rotating serving certificate
// manager (client-go's certificate.Manager): it asks for a certificate
// through a CSR to the signer kubernetes.io/kubelet-serving with subject
// system:node:<name> in system:nodes, the node name and addresses as DNS
// and IP names and usages digital signature and server auth (key
// encipherment too for an RSA key), keeps it in Dir and asks again before
// it expires or when the addresses change. Start it, then serve with
// GetCertificate(m). Until the CSR is approved (by volplane's csrapprover)
// and signed, there is no certificate and TLS handshakes fail.
func NewServingCertManager(cfg ServingCertConfig) (certificate.Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store, err := certificate.NewFileStore(ServingCertPairPrefix, cfg.Dir, cfg.Dir, "", "")
	if err != nil {
		return nil, fmt.Errorf("serving certificate store: %w", err)
	}
	m, err := certificate.NewManager(&certificate.Config{
		ClientsetFn:      func(*tls.Certificate) (kubernetes.Interface, error) { return cfg.Client, nil },
		GetTemplate:      func() *x509.CertificateRequest { return servingTemplate(cfg.NodeName, cfg.Addresses()) },
		SignerName:       certificatesv1.KubeletServingSignerName,
		GetUsages:        certificate.DefaultKubeletServingGetUsages,
		CertificateStore: store,
		Name:             "kubelet-serving",
	})
	if err != nil {
		return nil, fmt.Errorf("serving certificate manager: %w", err)
	}
	return m, nil
}

// GetCertificate serves m's current certificate, for Config.GetCertificate.
func GetCertificate(m certificate.Manager) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := m.Current(); c != nil {
			return c, nil
		}
		return nil, errors.New("no serving certificate available for the kubelet")
	}
}

// servingTemplate is the CSR the node asks for, or nil (ask nothing yet)
// while it knows no IP address of its own, as the kubelet: the API
// server may reach it by IP. DNS names are the node name and the
// Hostname, InternalDNS and ExternalDNS addresses; IPs the InternalIP and
// ExternalIP addresses (and a Hostname address that is an IP).
func servingTemplate(nodeName string, addrs []corev1.NodeAddress) *x509.CertificateRequest {
	dns := []string{nodeName}
	var ips []net.IP
	for _, a := range addrs {
		if a.Address == "" {
			continue
		}
		ip := net.ParseIP(a.Address)
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			if ip != nil && a.Type == corev1.NodeHostName {
				ips = append(ips, ip)
			} else if ip == nil {
				dns = append(dns, a.Address)
			}
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	if len(ips) == 0 {
		return nil
	}
	slices.Sort(dns)
	dns = slices.Compact(dns)
	slices.SortFunc(ips, func(a, b net.IP) int { return slices.Compare(a.To16(), b.To16()) })
	ips = slices.CompactFunc(ips, net.IP.Equal)
	return &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		DNSNames:    dns,
		IPAddresses: ips,
	}
}
