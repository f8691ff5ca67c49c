package downwardapi

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
)

func TestSetUpReadsNodeAllocatable(t *testing.T) {
	root := t.TempDir()
	host := fakehost.New()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}})
	p := New()
	if err := p.Init(&plugins.Host{RootDir: root, NodeName: "n1", Ops: host, Client: client}); err != nil {
		t.Fatal(err)
	}
	mode := int32(0o644)
	vol := &corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		DefaultMode: &mode,
		Items: []corev1.DownwardAPIVolumeFile{
			{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		},
	}}}
	pod := testPod()
	pod.Spec.Containers[0].Resources.Limits = nil
	args := plugins.SetUpArgs{Spec: &plugins.Spec{Name: "info", Volume: vol}, Pod: pod,
		Dir: filepath.Join(root, "pods/u-1/volumes/kubernetes.io~downward-api/info")}
	if err := p.SetUp(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(args.Dir, "mem")); string(b) != "2048" {
		t.Errorf("mem = %q, want the node's 2048 Mi", b)
	}
	mps, _ := host.Mounts()
	if len(mps) != 1 || mps[0].FSType != "tmpfs" {
		t.Errorf("downwardAPI volume not on tmpfs: %+v", mps)
	}
	// Labels change: SetUp again shows them.
	pod.Labels["tier"] = "back"
	if err := p.SetUp(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(args.Dir, "labels")); string(b) != "app=\"web\"\ntier=\"back\"" {
		t.Errorf("labels = %q", b)
	}
	if mps, _ := host.Mounts(); len(mps) != 1 {
		t.Errorf("second SetUp mounted again: %+v", mps)
	}
}
