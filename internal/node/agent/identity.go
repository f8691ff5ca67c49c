package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate"
)

// clientCertName is the certificate store's name for the node's client
// certificate: <root>/pki/kubelet-client-current.pem, as the kubelet's.
const clientCertName = "kubelet-client"

// identity is the node's client credential, system:node:<name> in
// system:nodes, kept current by a certificate manager: obtained through
// the CSR API with bootstrap credentials when the node has none (or
// issued by the control plane in the same process, for `up`), and
// renewed through the CSR API before it expires.
type identity struct {
	manager certificate.Manager
	// rest is the API as the node; its client certificate file is
	// re-read by client-go when the manager rotates it.
	rest *rest.Config
}

// newIdentity loads or obtains the node's certificate and starts its
// rotation. It returns once the node has a certificate.
func newIdentity(ctx context.Context, cfg *Config) (*identity, error) {
	server, caData, bootstrap, err := cfg.apiServer()
	if err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(cfg.RootDir, "pki")
	store, err := certificate.NewFileStore(clientCertName, pkiDir, pkiDir, "", "")
	if err != nil {
		return nil, fmt.Errorf("node certificate store: %w", err)
	}
	if _, err := store.Current(); err != nil {
		var noCert *certificate.NoCertKeyError
		if !errors.As(err, &noCert) {
			return nil, fmt.Errorf("node certificate: %w", err)
		}
		if cfg.IssueCertificate != nil {
			cert, key, err := cfg.IssueCertificate(cfg.NodeName)
			if err != nil {
				return nil, fmt.Errorf("node certificate: %w", err)
			}
			if _, err := store.Update(cert, key); err != nil {
				return nil, fmt.Errorf("node certificate: %w", err)
			}
		}
	}
	certFile := filepath.Join(pkiDir, clientCertName+"-current.pem")
	nodeREST := &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: caData, CertFile: certFile, KeyFile: certFile},
		QPS:             cfg.KubeAPIQPS,
		Burst:           cfg.KubeAPIBurst,
		UserAgent:       "volplane-node/" + cfg.NodeName,
		// Protobuf, as the kubelet speaks (its contentType default): the
		// API server decodes and encodes far less than with JSON.
		ContentConfig: rest.ContentConfig{
			ContentType:        runtime.ContentTypeProtobuf,
			AcceptContentTypes: runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON,
		},
	}
	m, err := certificate.NewManager(&certificate.Config{
		ClientsetFn: func(current *tls.Certificate) (kubernetes.Interface, error) {
			if current == nil {
				if bootstrap == nil {
					return nil, errors.New("no node certificate and no bootstrap credentials")
				}
				return kubernetes.NewForConfig(bootstrap)
			}
			return kubernetes.NewForConfig(nodeREST)
		},
		Template: &x509.CertificateRequest{Subject: pkix.Name{
			CommonName:   "system:node:" + cfg.NodeName,
			Organization: []string{"system:nodes"},
		}},
		SignerName:       certificatesv1.KubeAPIServerClientKubeletSignerName,
		Usages:           []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		CertificateStore: store,
	})
	if err != nil {
		return nil, fmt.Errorf("node certificate manager: %w", err)
	}
	m.Start()
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		return m.Current() != nil, nil
	})
	if err != nil {
		m.Stop()
		return nil, fmt.Errorf("waiting for the node's client certificate (CSR approval): %w", err)
	}
	if err := writeNodeKubeconfig(filepath.Join(cfg.RootDir, "kubeconfig"), server, caData, cfg.NodeName, certFile); err != nil {
		m.Stop()
		return nil, err
	}
	return &identity{manager: m, rest: nodeREST}, nil
}

func (id *identity) stop() { id.manager.Stop() }

// apiServer returns the API's URL and CA, and bootstrap credentials when
// the kubeconfig carries any.
func (c *Config) apiServer() (server string, caData []byte, bootstrap *rest.Config, err error) {
	if c.Kubeconfig == "" {
		return c.Server, c.CAData, nil, nil
	}
	r, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return "", nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	if err := rest.LoadTLSFiles(r); err != nil {
		return "", nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return r.Host, r.TLSClientConfig.CAData, r, nil
}

// writeNodeKubeconfig writes <root>/kubeconfig: the node's own
// credential, for tools run on the node, as the kubelet's kubeconfig.
func writeNodeKubeconfig(path, server string, caData []byte, node, certFile string) error {
	cfg := clientcmdapi.NewConfig()
	user := "system:node:" + node
	cfg.Clusters["volplane"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: certFile}
	cfg.Contexts["volplane"] = &clientcmdapi.Context{Cluster: "volplane", AuthInfo: user}
	cfg.CurrentContext = "volplane"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("node kubeconfig: %w", err)
	}
	return nil
}
