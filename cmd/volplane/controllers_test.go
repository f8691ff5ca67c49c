package main

import (
	"testing"

	"github.com/spf13/pflag"
)

// TestControllerClientLimits: against an existing cluster the
// controllers' client starts at kube-controller-manager's limits, not at
// those meant for volplane's own API; flags override either.
func TestControllerClientLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		qps   float32
		burst int
	}{
		{"own cluster", nil, embeddedQPS, embeddedBurst},
		{"existing cluster", []string{"--kubeconfig=/k"}, externalQPS, externalBurst},
		{"flags win", []string{"--kubeconfig=/k", "--controller-qps=50", "--controller-burst=80"}, 50, 80},
		{"flags in own cluster", []string{"--controller-qps=100"}, 100, embeddedBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
			var f controllerFlags
			f.add(fs)
			var kubeconfig string
			fs.StringVar(&kubeconfig, "kubeconfig", "", "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg := f.config(nil, "seed")
			if cfg.QPS != tc.qps || cfg.Burst != tc.burst {
				t.Errorf("QPS %v burst %d, want %v %d", cfg.QPS, cfg.Burst, tc.qps, tc.burst)
			}
		})
	}
}
