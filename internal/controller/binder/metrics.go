package binder

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// metrics are the PV controller's Prometheus series.
type metrics struct {
	bindDuration prometheus.Histogram
	binds        prometheus.Counter
	syncs        *prometheus.CounterVec
	writes       *prometheus.CounterVec
	batchSize    prometheus.Histogram
	matchSeconds prometheus.Histogram
}

func newMetrics(c *Controller, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		bindDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "volplane_pv_controller_bind_duration_seconds",
			Help:    "Time from the controller first seeing a claim unbound to the claim being Bound.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		binds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "volplane_pv_controller_binds_total",
			Help: "Claims this controller made Bound.",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "volplane_pv_controller_syncs_total",
			Help: "Syncs by kind (claim, volume, bind) and result (ok, conflict, error).",
		}, []string{"kind", "result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "volplane_pv_controller_api_writes_total",
			Help: "Writes to the API by resource, verb and result.",
		}, []string{"resource", "verb", "result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "volplane_pv_controller_match_batch_size",
			Help:    "Claims matched together in one settle-window batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		matchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "volplane_pv_controller_match_seconds",
			Help:    "Time to choose a volume for one claim in the match index.",
			Buckets: prometheus.ExponentialBuckets(1e-7, 4, 10),
		}),
	}
	depth := func(name string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "volplane_pv_controller_queue_depth",
			Help:        "Items waiting in each of the controller's queues.",
			ConstLabels: prometheus.Labels{"queue": name},
		}, f)
	}
	collectors := []prometheus.Collector{
		m.bindDuration, m.binds, m.syncs, m.writes, m.batchSize, m.matchSeconds,
		depth("claims", func() float64 { return float64(c.claimQueue.Len()) }),
		depth("volumes", func() float64 { return float64(c.volumeQueue.Len()) }),
		depth("binds", func() float64 { return float64(c.bindQueue.Len()) }),
		depth("match", func() float64 { return float64(c.batcher.pendingLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "volplane_pv_controller_available_volumes",
			Help: "Volumes in the match index (unbound, bindable).",
		}, func() float64 { _, _, n := c.store.counts(); return float64(n) }),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range collectors {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// result names the outcome of a sync or write for the metrics.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case apierrors.IsConflict(err):
		return "conflict"
	default:
		return "error"
	}
}
