package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"volplane/internal/controller"
	"volplane/internal/controller/all"
)

// controllerFlags configure volplane's controller manager and its
// controllers.
type controllerFlags struct {
	metricsListen string
	disabled      []string
	workers       int
	options       all.Options
}

func (f *controllerFlags) add(fs *pflag.FlagSet) {
	f.options = all.DefaultOptions()
	f.options.AddFlags(fs)
	fs.StringVar(&f.metricsListen, "controller-metrics-listen", "", "loopback HOST:PORT where volplane's controllers serve /metrics (off when empty)")
	fs.StringSliceVar(&f.disabled, "disable-controllers", nil, "volplane controllers not to run, by name")
	fs.IntVar(&f.workers, "controller-workers", 4, "workers per controller queue")
}

// config builds the controller manager's Config. identitySeed makes the
// Lease identity stable across restarts of one server (its data dir), so
// a restarted server takes its own Lease back at once while another
// server waits for it to expire.
func (f *controllerFlags) config(restCfg *rest.Config, identitySeed string) controller.Config {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(identitySeed))
	return controller.Config{
		REST:          restCfg,
		Controllers:   all.DescriptorsFor(f.options),
		Disabled:      f.disabled,
		LeaderElect:   true,
		Identity:      host + "_" + hex.EncodeToString(sum[:6]),
		Workers:       f.workers,
		MetricsListen: f.metricsListen,
	}
}
