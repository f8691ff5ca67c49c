package csidriver

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"volplane/internal/csidriver/state"
)

// metrics are the driver's Prometheus metrics, in a registry of its own
// so that several drivers (tests, the bench) can live in one process.
type metrics struct {
	registry *prometheus.Registry
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(d *Driver) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "volplane_csi", Name: "calls_total",
			Help: "CSI calls answered, by method and gRPC code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "volplane_csi", Name: "call_duration_seconds",
			Help:    "Time to answer a CSI call, by method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"method"}),
	}
	m.registry.MustRegister(m.calls, m.latency, poolCollector{d})
	return m
}

func (m *metrics) observe(method string, code codes.Code, d time.Duration) {
	m.calls.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

// poolCollector reports the pool's space and the objects in it when
// scraped.
type poolCollector struct{ d *Driver }

var (
	poolBytesDesc = prometheus.NewDesc("volplane_csi_pool_bytes",
		"The pool's filesystem size, free bytes, and bytes promised to volumes.", []string{"kind"}, nil)
	objectsDesc = prometheus.NewDesc("volplane_csi_objects",
		"Volumes and snapshots recorded, by kind.", []string{"kind"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolBytesDesc
	ch <- objectsDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	if total, free, err := c.d.space(); err == nil {
		ch <- prometheus.MustNewConstMetric(poolBytesDesc, prometheus.GaugeValue, float64(total), "size")
		ch <- prometheus.MustNewConstMetric(poolBytesDesc, prometheus.GaugeValue, float64(free), "free")
	}
	var promised float64
	counts := map[string]float64{"dir": 0, "block": 0, "snapshot": 0}
	for _, v := range c.d.store.ListVolumes() {
		promised += float64(v.CapacityBytes)
		if v.Kind == state.KindBlock {
			counts["block"]++
		} else {
			counts["dir"]++
		}
	}
	counts["snapshot"] = float64(len(c.d.store.ListSnapshots()))
	ch <- prometheus.MustNewConstMetric(poolBytesDesc, prometheus.GaugeValue, promised, "promised")
	for kind, n := range counts {
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, n, kind)
	}
}

// MetricsHandler serves the driver's metrics in the Prometheus format.
func (d *Driver) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{})
}
