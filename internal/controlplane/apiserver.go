package controlplane

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// apiserverArgs derives kube-apiserver's flags from the config: the
// upstream component runs from its own options, exactly as its binary
// would with these flags.
func (c *Config) apiserverArgs(p *PKI, etcdServers []string, host, port string) []string {
	args := []string{
		"--bind-address=" + host,
		"--secure-port=" + port,
		"--etcd-servers=" + strings.Join(etcdServers, ","),
		"--tls-cert-file=" + p.Path(servingCert),
		"--tls-private-key-file=" + p.Path(servingKey),
		"--client-ca-file=" + p.Path(caCert),
		"--token-auth-file=" + p.Path(tokensFile),
		"--authorization-mode=Node,RBAC",
		// Node agents join with bootstrap tokens and obtain their own
		// certificates; NodeRestriction keeps each to its own Node and
		// pods.
		"--enable-bootstrap-token-auth=true",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.Path(saPub),
		"--service-account-signing-key-file=" + p.Path(saKey),
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--kubelet-client-certificate=" + p.Path(kubeletClientCert),
		"--kubelet-client-key=" + p.Path(kubeletClientKey),
		// Node agents serve the kubelet API with certificates the cluster
		// CA signs (kubernetes.io/kubelet-serving); nodes on one machine
		// share its addresses, so the address comes before the name.
		"--kubelet-certificate-authority=" + p.Path(caCert),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--allow-privileged=true",
		"--profiling=false",
		"--feature-gates=" + featureGates,
		// Stop within seconds, open watches included: end watches within
		// 1s and give HTTP shutdown 2s instead of the request timeout.
		"--shutdown-watch-termination-grace-period=1s",
		"--shutdown-send-retry-after=true",
	}
	ip := net.ParseIP(host)
	switch {
	case ip != nil && ip.IsLoopback():
		// Endpoints may not name loopback addresses, so a server that
		// only listens on loopback does not publish itself in the
		// kubernetes Service.
		args = append(args, "--advertise-address="+host, "--endpoint-reconciler-type=none")
	case ip != nil && !ip.IsUnspecified():
		args = append(args, "--advertise-address="+host)
	}
	return args
}

// runAPIServer runs kube-apiserver until ctx is done. ln is the listener
// it serves on, opened beforehand so that an occupied port fails before
// anything else starts.
func runAPIServer(ctx context.Context, args []string, ln net.Listener) error {
	s := apiserveroptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	s.SecureServing.Listener = ln
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver: %w", utilerrors.NewAggregate(errs))
	}
	return apiserver.Run(ctx, completed)
}
