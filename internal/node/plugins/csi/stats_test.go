package csi

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"volplane/internal/csi/csitest"
)

func TestVolumeStatsMetrics(t *testing.T) {
	r := newRig(t, csitest.NodeOptions{}, attachment(true, ""))
	s := spec(pv())
	s.Volume = &corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim"}}}
	if err := r.mount(t, s, nil); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP kubelet_volume_stats_capacity_bytes Capacity in bytes of the volume
# TYPE kubelet_volume_stats_capacity_bytes gauge
kubelet_volume_stats_capacity_bytes{namespace="ns",persistentvolumeclaim="claim"} 1000
# HELP kubelet_volume_stats_inodes_used Number of used inodes in the volume
# TYPE kubelet_volume_stats_inodes_used gauge
kubelet_volume_stats_inodes_used{namespace="ns",persistentvolumeclaim="claim"} 10
`
	if err := testutil.CollectAndCompare(r.p.Collector(), strings.NewReader(want),
		"kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_inodes_used"); err != nil {
		t.Fatal(err)
	}
	if err := r.p.TearDown(context.Background(), podDir(r)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(r.p.Collector()); n != 0 {
		t.Errorf("%d metrics after TearDown", n)
	}
}
