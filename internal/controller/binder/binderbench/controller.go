package binderbench

import (
	"context"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"

	"volplane/internal/controller"
	"volplane/internal/controller/binder"
)

// ControllerConfig configures the controller process of the bench.
type ControllerConfig struct {
	Kubeconfig    string
	MetricsListen string
	Binder        binder.Config
}

// RunController runs volplane's PV controller alone (no protection
// controllers, no leader election) against the kubeconfig's API until ctx
// is done, serving its metrics (process CPU included) for the bench.
func RunController(ctx context.Context, cfg ControllerConfig) error {
	rest, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	m, err := controller.New(controller.Config{
		REST:          rest,
		Controllers:   []controller.Descriptor{binder.Descriptor(cfg.Binder)},
		MetricsListen: cfg.MetricsListen,
	})
	if err != nil {
		return err
	}
	return m.Run(ctx)
}
