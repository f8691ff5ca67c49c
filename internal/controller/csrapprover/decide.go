package csrapprover

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
)

// nodeOf returns the node a CSR's requester claims to be, or "" when the
// requester is not a node.
func nodeOf(csr *certificatesv1.CertificateSigningRequest) string {
	name, ok := strings.CutPrefix(csr.Spec.Username, nodeUserPrefix)
	if !ok {
		return ""
	}
	return name
}

// pending reports whether csr is neither approved, denied nor failed.
func pending(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return false
		}
	}
	return true
}

// The two usage sets the kubelet-serving signer accepts: with and
// without key encipherment (RSA and other keys).
var (
	servingUsages       = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	servingUsagesWithKE = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}
)

// decide is the approver's whole policy for a pending
// kubernetes.io/kubelet-serving CSR: it returns nil when the CSR may be
// approved, else why not. node is the requester's Node object (nil when
// there is none). A CSR is approved only when all hold:
//
//   - the requester is system:node:<name> in group system:nodes;
//   - the request parses and is signed by its key;
//   - its subject is exactly CN=system:node:<name>, O=system:nodes;
//   - its usages are digital signature and server auth, with or without
//     key encipherment, and nothing else;
//   - it asks for at least one DNS name or IP and no email or URI names;
//   - the Node <name> exists, and every DNS name is the node's name or a
//     Hostname, InternalDNS or ExternalDNS address of it, and every IP is
//     one of its InternalIP, ExternalIP or (IP-valued) Hostname addresses.
func decide(csr *certificatesv1.CertificateSigningRequest, node *corev1.Node) error {
	name := nodeOf(csr)
	if name == "" {
		return fmt.Errorf("requester %q is not a node", csr.Spec.Username)
	}
	if !slices.Contains(csr.Spec.Groups, nodesGroup) {
		return fmt.Errorf("requester %q is not in %s", csr.Spec.Username, nodesGroup)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return fmt.Errorf("request signature: %w", err)
	}
	s := req.Subject
	if s.CommonName != csr.Spec.Username || !slices.Equal(s.Organization, []string{nodesGroup}) ||
		len(s.Country)+len(s.OrganizationalUnit)+len(s.Locality)+len(s.Province)+len(s.StreetAddress)+len(s.PostalCode) > 0 || s.SerialNumber != "" {
		return fmt.Errorf("subject %q is not CN=%s,O=%s", s.String(), csr.Spec.Username, nodesGroup)
	}
	if !sameUsages(csr.Spec.Usages, servingUsages) && !sameUsages(csr.Spec.Usages, servingUsagesWithKE) {
		return fmt.Errorf("usages %q are not digital signature and server auth (and key encipherment)", csr.Spec.Usages)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return fmt.Errorf("email or URI names asked for")
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return fmt.Errorf("no DNS name or IP asked for")
	}
	if node == nil {
		return fmt.Errorf("node %q does not exist", name)
	}
	if node.Name != name {
		return fmt.Errorf("node %q is not the requester %q", node.Name, name)
	}
	dns, ips := nodeNames(node)
	for _, d := range req.DNSNames {
		if !slices.Contains(dns, d) {
			return fmt.Errorf("DNS name %q is not an address of node %q", d, name)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(ips, ip.Equal) {
			return fmt.Errorf("IP %s is not an address of node %q", ip, name)
		}
	}
	return nil
}

// nodeNames are the DNS names and IPs a node's serving certificate may
// carry: its name and its addresses.
func nodeNames(node *corev1.Node) (dns []string, ips []net.IP) {
	dns = []string{node.Name}
	for _, a := range node.Status.Addresses {
		ip := net.ParseIP(a.Address)
		switch a.Type {
		case corev1.NodeHostName:
			if ip != nil {
				ips = append(ips, ip)
			} else {
				dns = append(dns, a.Address)
			}
		case corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			if ip == nil {
				dns = append(dns, a.Address)
			}
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	return dns, ips
}

// sameUsages reports whether got is want as a set.
func sameUsages(got, want []certificatesv1.KeyUsage) bool {
	g := slices.Clone(got)
	slices.Sort(g)
	g = slices.Compact(g)
	w := slices.Clone(want)
	slices.Sort(w)
	return slices.Equal(g, w)
}
