package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	netutils "k8s.io/utils/net"

	"volplane/internal/logging"
)

// ControlPlane is a running embedded control plane: etcd (embedded or
// external), kube-apiserver and kube-controller-manager.
type ControlPlane struct {
	cfg  Config
	pki  *PKI
	lock *DirLock
	etcd *embeddedEtcd
	// admin is the API client as the admin identity.
	admin kubernetes.Interface

	// Components stop in reverse order of start: the controller manager
	// while the API still answers, then the API, then etcd.
	cancelKCM, cancelAPI context.CancelFunc
	kcmDone, apiDone     chan struct{}
	errc                 chan error
	once                 sync.Once
}

// Start brings the control plane up and returns once the API answers
// /readyz and the admin kubeconfig is written. On any error everything it
// started is stopped again, no kubeconfig is left behind, and a new PKI
// is not kept.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := logging.FromContext(ctx).With("component", "controlplane")
	cp := &ControlPlane{cfg: cfg, errc: make(chan error, 2)}
	// An embedded component's klog.Fatal ends the process; stop etcd and
	// drop the kubeconfig first.
	logging.AtFatal(cp.Stop)
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()

	if cp.lock, err = LockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	// A kubeconfig on disk means "this server answers": drop the last
	// run's until this one does.
	if err := os.Remove(cfg.KubeconfigPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("data dir %s cannot be written: %w", cfg.DataDir, err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", cfg.Listen, errors.Unwrap(err))
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()

	endpoints := cfg.EtcdServers
	if len(endpoints) == 0 {
		start := time.Now()
		if cp.etcd, err = startEmbeddedEtcd(ctx, cfg.etcdDir(), cfg.runDir()); err != nil {
			return nil, err
		}
		endpoints = []string{cp.etcd.endpoint}
		log.Debug("etcd ready", "took", time.Since(start))
	}

	host, port, _ := net.SplitHostPort(cfg.Listen)
	hostname, _ := os.Hostname()
	cp.pki, err = LoadOrCreatePKI(cfg.pkiDir(), []string{host, "127.0.0.1", hostname, firstServiceIP(cfg.ServiceCIDR)}, func(p *PKI) error {
		return checkEtcd(ctx, endpoints, p.CAFingerprint())
	})
	if err != nil {
		return nil, err
	}

	apiCtx, cancelAPI := context.WithCancel(context.WithoutCancel(ctx))
	cp.cancelAPI = cancelAPI
	cp.apiDone = cp.goRun(func() error { return runAPIServer(apiCtx, cfg.apiserverArgs(cp.pki, endpoints, host, port), ln) })

	admin, err := cp.RESTConfig(AdminIdentity)
	if err != nil {
		return nil, err
	}
	if cp.admin, err = kubernetes.NewForConfig(admin); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := reconcileRBAC(ctx, cp.admin); err != nil {
		return nil, err
	}
	if err := reconcileFlowSchemas(ctx, cp.admin); err != nil {
		return nil, err
	}

	kcmKubeconfig := filepath.Join(cp.pki.Dir, "kube-controller-manager.kubeconfig")
	if err := cp.writeKubeconfig(kcmKubeconfig, ControllerManagerIdentity); err != nil {
		return nil, err
	}
	kcmCtx, cancelKCM := context.WithCancel(apiCtx)
	cp.cancelKCM = cancelKCM
	cp.kcmDone = cp.goRun(func() error { return runControllerManager(kcmCtx, cfg.controllerManagerArgs(cp.pki, kcmKubeconfig)) })

	if err := cp.writeKubeconfig(cfg.KubeconfigPath(), AdminIdentity); err != nil {
		return nil, err
	}
	return cp, nil
}

// goRun runs a component; its return before Stop is an error of the
// whole control plane. The channel is closed when it has returned.
func (cp *ControlPlane) goRun(run func() error) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := run()
		if err == nil || errors.Is(err, context.Canceled) {
			err = errors.New("stopped")
		}
		select {
		case cp.errc <- err:
		default:
		}
	}()
	return done
}

// waitReady polls /readyz until it passes, a component fails, or the
// ready timeout runs out.
func (cp *ControlPlane) waitReady(ctx context.Context) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, cp.cfg.ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-cp.errc:
			return false, fmt.Errorf("kube-apiserver: %w", err)
		default:
		}
		body, err := cp.admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Errorf("%w: %s", err, body)
			return false, nil
		}
		return true, nil
	})
	if err != nil && last != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("API not ready: %w (last: %v)", err, last)
	}
	return err
}

func (cp *ControlPlane) writeKubeconfig(path string, id Identity) error {
	tok, err := cp.pki.Token(id)
	if err != nil {
		return err
	}
	data, err := kubeconfigFor(cp.cfg.serverURL(), cp.pki.CAPEM, id.User, tok)
	if err != nil {
		return err
	}
	return writeFile(path, data)
}

// RESTConfig is a client configuration for the API as id.
func (cp *ControlPlane) RESTConfig(id Identity) (*rest.Config, error) {
	tok, err := cp.pki.Token(id)
	if err != nil {
		return nil, err
	}
	return restConfigFor(cp.cfg.serverURL(), cp.pki.CAPEM, tok), nil
}

// AdminClient is an API client as the admin identity.
func (cp *ControlPlane) AdminClient() kubernetes.Interface { return cp.admin }

// KubeconfigPath is the admin kubeconfig's path.
func (cp *ControlPlane) KubeconfigPath() string { return cp.cfg.KubeconfigPath() }

// Err reports a component that stopped on its own.
func (cp *ControlPlane) Err() <-chan error { return cp.errc }

// Stop stops every component, etcd last, and releases the data dir. It
// is safe to call more than once.
func (cp *ControlPlane) Stop() {
	cp.once.Do(func() {
		logging.Stopping()
		stop := func(cancel context.CancelFunc, done chan struct{}, within time.Duration) {
			if cancel == nil {
				return
			}
			cancel()
			select {
			case <-done:
			case <-time.After(within):
			}
		}
		stop(cp.cancelKCM, cp.kcmDone, 3*time.Second)
		stop(cp.cancelAPI, cp.apiDone, 4*time.Second)
		if cp.etcd != nil {
			cp.etcd.Close()
		}
		// The kubeconfig says "this server answers"; it no longer does.
		if cp.lock != nil {
			os.Remove(cp.cfg.KubeconfigPath())
		}
		cp.lock.Release()
	})
}

// firstServiceIP is the kubernetes Service's cluster IP: the first
// address of the range.
func firstServiceIP(cidr string) string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return ""
	}
	ip, err := netutils.GetIndexedIP(n, 1)
	if err != nil {
		return ""
	}
	return ip.String()
}
