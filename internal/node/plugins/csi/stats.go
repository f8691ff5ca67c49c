package csi

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-helpers/storage/ephemeral"

	"volplane/internal/logging"
	"volplane/internal/node/plugins"
)

// statsTimeout bounds the NodeGetVolumeStats calls of one scrape.
const statsTimeout = 5 * time.Second

// published is a volume SetUp published for a pod: what the metrics and
// the republishing need.
type published struct {
	podUID                   types.UID
	namespace, claim         string // claim is "" for a PV not reached through a claim
	driver, volumeID, target string
	staging                  string
}

// trackPublished remembers a published volume by pod volume directory.
// Only claims (and generic ephemeral volumes) have the labels upstream's
// metrics carry.
func (p *Plugin) trackPublished(args plugins.SetUpArgs, pub published) {
	if vol := args.Spec.Volume; vol != nil {
		switch {
		case vol.PersistentVolumeClaim != nil:
			pub.claim = vol.PersistentVolumeClaim.ClaimName
		case vol.Ephemeral != nil:
			pub.claim = ephemeral.VolumeClaimName(args.Pod, vol)
		}
	}
	pub.podUID, pub.namespace = args.Pod.UID, args.Pod.Namespace
	p.mu.Lock()
	p.published[args.Dir] = pub
	p.mu.Unlock()
}

func (p *Plugin) untrack(dir string) {
	p.mu.Lock()
	delete(p.published, dir)
	p.mu.Unlock()
}

var (
	statsLabels  = []string{"namespace", "persistentvolumeclaim"}
	descCapacity = prometheus.NewDesc("kubelet_volume_stats_capacity_bytes",
		"Capacity in bytes of the volume", statsLabels, nil)
	descAvailable = prometheus.NewDesc("kubelet_volume_stats_available_bytes",
		"Number of available bytes in the volume", statsLabels, nil)
	descUsed = prometheus.NewDesc("kubelet_volume_stats_used_bytes",
		"Number of used bytes in the volume", statsLabels, nil)
	descInodes = prometheus.NewDesc("kubelet_volume_stats_inodes",
		"Maximum number of inodes in the volume", statsLabels, nil)
	descInodesFree = prometheus.NewDesc("kubelet_volume_stats_inodes_free",
		"Number of free inodes in the volume", statsLabels, nil)
	descInodesUsed = prometheus.NewDesc("kubelet_volume_stats_inodes_used",
		"Number of used inodes in the volume", statsLabels, nil)
)

// Collector returns the kubelet_volume_stats_* metrics of the volumes
// this plugin published for claims, read with NodeGetVolumeStats from
// drivers that have GET_VOLUME_STATS at each scrape; register it with the
// node's metrics registry. A claim used by several pods is reported once.
func (p *Plugin) Collector() prometheus.Collector { return statsCollector{p} }

type statsCollector struct{ p *Plugin }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapacity, descAvailable, descUsed, descInodes, descInodesFree, descInodesUsed} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	p.mu.Lock()
	seen := map[[2]string]published{}
	for _, pub := range p.published {
		if pub.claim != "" {
			seen[[2]string{pub.namespace, pub.claim}] = pub
		}
	}
	p.mu.Unlock()
	keys := make([][2]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	for _, k := range keys {
		pub := seen[k]
		cl, caps, err := p.driver(ctx, pub.driver)
		if err != nil || !caps.GetVolumeStats {
			continue
		}
		st, err := cl.NodeGetVolumeStats(ctx, pub.volumeID, pub.target, pub.staging)
		if err != nil {
			logging.FromContext(ctx).Debug("volume stats", "namespace", pub.namespace, "claim", pub.claim, "err", err)
			continue
		}
		for _, m := range []struct {
			d *prometheus.Desc
			v int64
		}{
			{descCapacity, st.TotalBytes}, {descAvailable, st.AvailableBytes}, {descUsed, st.UsedBytes},
			{descInodes, st.TotalInodes}, {descInodesFree, st.AvailableInodes}, {descInodesUsed, st.UsedInodes},
		} {
			if m.v >= 0 {
				ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(m.v), pub.namespace, pub.claim)
			}
		}
	}
}
