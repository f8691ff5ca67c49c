package binderbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"volplane/internal/controlplane"
	"volplane/internal/logging"
)

// env is the API a scenario runs against: an embedded control plane of
// its own (fresh data dir), or the cluster of --kubeconfig.
type env struct {
	plane *controlplane.ControlPlane
	// client is the load generator's (admin) client, admin its config.
	client kubernetes.Interface
	admin  *rest.Config
	// ctrlKubeconfig is what the controller process uses: volplane's
	// controller identity on an embedded plane.
	ctrlKubeconfig string
	dir            string
}

func startEnv(ctx context.Context, cfg *Config) (*env, error) {
	dir, err := os.MkdirTemp(cfg.WorkDir, "volplane-bench-binder-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	var admin *rest.Config
	if cfg.Kubeconfig != "" {
		if admin, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		e.ctrlKubeconfig = cfg.Kubeconfig
	} else {
		listen, err := freeAddr()
		if err != nil {
			return nil, err
		}
		// The embedded plane logs upstream's chatter; the bench prints
		// figures.
		pctx := logging.NewContext(ctx, logging.FromContext(ctx).With("component", "bench-api"))
		e.plane, err = controlplane.Start(pctx, controlplane.Config{DataDir: filepath.Join(dir, "api"), Listen: listen})
		if err != nil {
			return nil, fmt.Errorf("starting the API: %w", err)
		}
		if admin, err = e.plane.RESTConfig(controlplane.AdminIdentity); err != nil {
			e.stop()
			return nil, err
		}
		ctrl, err := e.plane.RESTConfig(controlplane.VolplaneControllerIdentity)
		if err != nil {
			e.stop()
			return nil, err
		}
		e.ctrlKubeconfig = filepath.Join(dir, "controller.kubeconfig")
		if err := writeKubeconfig(e.ctrlKubeconfig, ctrl); err != nil {
			e.stop()
			return nil, err
		}
	}
	admin = rest.CopyConfig(admin)
	admin.QPS, admin.Burst = 5000, 10000
	// Protobuf like the controllers: the calibration measures the API
	// with the encoding the binder's writes use.
	admin.ContentType = runtime.ContentTypeProtobuf
	admin.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	e.admin = admin
	if e.client, err = kubernetes.NewForConfig(admin); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	if e.plane != nil {
		e.plane.Stop()
	}
	_ = os.RemoveAll(e.dir)
}

func writeKubeconfig(path string, c *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["bench"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["bench"] = &clientcmdapi.AuthInfo{Token: c.BearerToken}
	kc.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	kc.CurrentContext = "bench"
	return clientcmd.WriteToFile(*kc, path)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ctrlProc is the PV controller in a process of its own, so that its CPU
// time is its own: `volplane bench binder controller`.
type ctrlProc struct {
	cmd     *exec.Cmd
	metrics string
	exited  chan struct{}
	log     *os.File
}

// startController starts the controller process with the given settle
// window and waits until it serves metrics.
func (e *env) startController(ctx context.Context, cfg *Config, settle time.Duration) (*ctrlProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp(e.dir, "controller-*.log")
	if err != nil {
		return nil, err
	}
	args := []string{"bench", "binder", "controller",
		"--kubeconfig", e.ctrlKubeconfig,
		"--metrics-listen", addr,
		"--pv-bind-settle-window", settle.String(),
		"--pv-bind-workers", fmt.Sprint(cfg.BindWorkers),
	}
	if cfg.ControllerCPUProfile != "" {
		args = append(args, "--cpuprofile", cfg.ControllerCPUProfile)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the controller: %w", err)
	}
	p := &ctrlProc{cmd: cmd, metrics: "http://" + addr + "/metrics", exited: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	for {
		if _, err := p.scrape(); err == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("controller exited: %s", p.tail())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail is the end of the controller's log, for errors.
func (p *ctrlProc) tail() string {
	data, _ := os.ReadFile(p.log.Name())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func (p *ctrlProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
}

// sample is what the controller's metrics say at one moment.
type sample struct {
	cpu       float64 // process CPU seconds
	writesOK  float64
	conflicts float64
	writeErrs float64
	binds     float64
}

func (p *ctrlProc) scrape() (sample, error) {
	var s sample
	resp, err := http.Get(p.metrics)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("metrics: %s", resp.Status)
	}
	fams, err := parseMetrics(resp.Body)
	if err != nil {
		return s, err
	}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			}
			label := func(n string) string {
				for _, l := range m.GetLabel() {
					if l.GetName() == n {
						return l.GetValue()
					}
				}
				return ""
			}
			switch name {
			case "process_cpu_seconds_total":
				s.cpu += v
			case "volplane_pv_controller_binds_total":
				s.binds += v
			case "volplane_pv_controller_api_writes_total":
				switch label("result") {
				case "ok":
					s.writesOK += v
				case "conflict":
					s.conflicts += v
				default:
					s.writeErrs += v
				}
			}
		}
	}
	return s, nil
}

// waitBinds polls the controller's metrics until it has made binds
// claims Bound.
func (p *ctrlProc) waitBinds(ctx context.Context, binds float64, limit time.Duration) (sample, error) {
	deadline := time.Now().Add(limit)
	for {
		s, err := p.scrape()
		if err == nil && s.binds >= binds {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%.0f binds after %v, want %.0f; controller log:\n%s", s.binds, limit, binds, p.tail())
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-p.exited:
			return s, fmt.Errorf("controller exited: %s", p.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return fams, nil
}
