package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"volplane/internal/controller"
	"volplane/internal/controller/all"
	"volplane/internal/controller/csicontroller"
)

// controllerFlags configure volplane's controller manager and its
// controllers.
type controllerFlags struct {
	metricsListen string
	disabled      []string
	workers       int
	qps           float32
	burst         int
	options       all.Options
	// csi are the drivers named with --csi-controller.
	csi csiControllerFlag
	// fs is the command's flag set: config reads --kubeconfig from it.
	fs *pflag.FlagSet
}

// The controllers' API client limits. In volplane's own cluster the
// controllers may use the API as fast as it answers; against an existing
// cluster (server --kubeconfig) they share its API server with everyone
// else, so they start at kube-controller-manager's defaults.
const (
	embeddedQPS, embeddedBurst = 2000, 4000
	externalQPS, externalBurst = 20, 30
)

func (f *controllerFlags) add(fs *pflag.FlagSet) {
	f.options = all.DefaultOptions()
	f.options.AddFlags(fs)
	fs.StringVar(&f.metricsListen, "controller-metrics-listen", "", "loopback HOST:PORT where volplane's controllers serve /metrics over HTTPS to callers allowed to get /metrics, as kube-controller-manager (off when empty)")
	fs.Var(&f.csi, "csi-controller", "run the controller side (provisioner, attacher, storage capacity) of the CSI driver NAME on that socket in process; repeatable")
	fs.StringSliceVar(&f.disabled, "disable-controllers", nil, "volplane controllers not to run, by name")
	fs.IntVar(&f.workers, "controller-workers", 4, "workers per controller queue")
	fs.Float32Var(&f.qps, "controller-qps", 0, fmt.Sprintf("queries per second volplane's controllers may send the API (0: %d, or %d with --kubeconfig)", embeddedQPS, externalQPS))
	fs.IntVar(&f.burst, "controller-burst", 0, fmt.Sprintf("burst of queries above --controller-qps (0: %d, or %d with --kubeconfig)", embeddedBurst, externalBurst))
	f.fs = fs
}

// limits returns the client's QPS and burst: the flags, else the
// defaults of the mode (an existing cluster's API when --kubeconfig is
// set).
func (f *controllerFlags) limits() (float32, int) {
	qps, burst := float32(embeddedQPS), embeddedBurst
	if kc := f.fs.Lookup("kubeconfig"); kc != nil && kc.Value.String() != "" {
		qps, burst = externalQPS, externalBurst
	}
	if f.qps > 0 {
		qps = f.qps
	}
	if f.burst > 0 {
		burst = f.burst
	}
	return qps, burst
}

// config builds the controller manager's Config. identitySeed makes the
// Lease identity stable across restarts of one server (its data dir), so
// a restarted server takes its own Lease back at once while another
// server waits for it to expire.
func (f *controllerFlags) config(restCfg *rest.Config, identitySeed string) controller.Config {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(identitySeed))
	qps, burst := f.limits()
	return controller.Config{
		QPS:           qps,
		Burst:         burst,
		REST:          restCfg,
		Controllers:   append(all.DescriptorsFor(f.options), f.csiDescriptors()...),
		Disabled:      f.disabled,
		LeaderElect:   true,
		Identity:      host + "_" + hex.EncodeToString(sum[:6]),
		Workers:       f.workers,
		MetricsListen: f.metricsListen,
		MetricsAuth:   true,
	}
}

// csiDescriptors are the controllers of the drivers named with
// --csi-controller, one per driver (csi-controller-<name>).
func (f *controllerFlags) csiDescriptors() []controller.Descriptor {
	var out []controller.Descriptor
	for _, c := range f.csi.drivers {
		out = append(out, csicontroller.Descriptor(c))
	}
	return out
}
