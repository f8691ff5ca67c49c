package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// Groups of node identities.
const (
	// NodesGroup holds every node agent's identity, system:node:<name>.
	NodesGroup = "system:nodes"
	// BootstrappersGroup holds every bootstrap token's identity.
	BootstrappersGroup = bootstrapapi.BootstrapDefaultGroup
	// nodeTokenGroup is the extra group of the tokens volplane makes
	// for joining nodes, as kubeadm names its own.
	nodeTokenGroup = "system:bootstrappers:volplane:default-node-token"
)

// NodeUser is the user name of a node agent's identity.
func NodeUser(node string) string { return "system:node:" + node }

// BootstrapKubeconfig makes a bootstrap token valid for ttl (a Secret
// bootstrap-token-<id> in kube-system, which upstream's token-cleaner
// removes once expired) and returns a kubeconfig that authenticates with
// it: what `volplane node --kubeconfig` needs to join. The node then asks
// for its own certificate through the CSR API.
func (cp *ControlPlane) BootstrapKubeconfig(ctx context.Context, ttl time.Duration) ([]byte, error) {
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	id, secret, _ := strings.Cut(token, ".")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenDescriptionKey:      "made by volplane server for joining nodes",
			bootstrapapi.BootstrapTokenExpirationKey:       time.Now().Add(ttl).UTC().Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      nodeTokenGroup,
		},
	}
	if _, err := cp.admin.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	return kubeconfigFor(cp.cfg.serverURL(), cp.pki.CAPEM, "kubelet-bootstrap", token)
}

// LocalProvisionerKubeconfig is a kubeconfig for the node agents' local
// static provisioner (`volplane node --local-provisioner-kubeconfig`):
// its own identity, LocalProvisionerIdentity, since a node's may not
// create PVs.
func (cp *ControlPlane) LocalProvisionerKubeconfig() ([]byte, error) {
	tok, err := cp.pki.Token(LocalProvisionerIdentity)
	if err != nil {
		return nil, err
	}
	return kubeconfigFor(cp.cfg.serverURL(), cp.pki.CAPEM, LocalProvisionerIdentity.User, tok)
}

// NodeClientCert issues node a client certificate from the cluster CA
// (user system:node:<node>, group system:nodes): `up` gives its own node
// agent its first certificate so, where a joining node asks for one
// through the CSR API. It returns the certificate and key as PEM.
func (cp *ControlPlane) NodeClientCert(node string) (certPEM, keyPEM []byte, err error) {
	return cp.pki.NodeClientCert(node)
}

// CAPEM is the cluster CA certificate.
func (cp *ControlPlane) CAPEM() []byte { return cp.pki.CAPEM }

// APIServerURL is the URL node agents and pods reach the API at.
func (cp *ControlPlane) APIServerURL() string { return cp.cfg.serverURL() }
