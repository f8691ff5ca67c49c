package downwardapi

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "shop", UID: "u-1",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "say \"hi\"\n"},
		},
		Spec: corev1.PodSpec{
			NodeName: "n1", ServiceAccountName: "sa",
			Containers: []corev1.Container{{
				Name: "main",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
			}},
			InitContainers: []corev1.Container{{Name: "init"}},
		},
		Status: corev1.PodStatus{
			HostIP: "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}},
			PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}},
		},
	}
}

func TestFieldValue(t *testing.T) {
	pod := testPod()
	for _, tc := range []struct{ path, want, err string }{
		{"metadata.name", "web", ""},
		{"metadata.namespace", "shop", ""},
		{"metadata.uid", "u-1", ""},
		{"metadata.labels", "app=\"web\"\ntier=\"front\"", ""},
		{"metadata.annotations", `note="say \"hi\"\n"`, ""},
		{"metadata.labels['tier']", "front", ""},
		{"metadata.annotations['note']", "say \"hi\"\n", ""},
		{"metadata.labels['missing']", "", ""},
		{"spec.nodeName", "n1", ""},
		{"spec.serviceAccountName", "sa", ""},
		{"status.hostIP", "10.0.0.1", ""},
		{"status.hostIPs", "10.0.0.1,fd00::1", ""},
		{"status.podIP", "10.1.0.5", ""},
		{"status.podIPs", "10.1.0.5", ""},
		{"metadata.labels['bad key!']", "", "invalid key subscript in metadata.labels['bad key!']"},
		{"metadata.name['x']", "", `fieldPath "metadata.name['x']" does not support subscript`},
		{"spec.hostname", "", "unsupported fieldPath: spec.hostname"},
	} {
		got, err := FieldValue(pod, tc.path)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
}

func TestResourceValue(t *testing.T) {
	pod := testPod()
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
	for _, tc := range []struct {
		resource, container, divisor, want, err string
	}{
		{"requests.cpu", "main", "", "1", ""}, // 250m rounds up to 1
		{"requests.cpu", "main", "1m", "250", ""},
		{"requests.memory", "main", "1Mi", "64", ""},
		{"limits.memory", "main", "", "134217728", ""},
		{"limits.cpu", "main", "1m", "4000", ""}, // no limit: node allocatable
		{"limits.ephemeral-storage", "main", "1Gi", "100", ""},
		{"requests.ephemeral-storage", "main", "", "0", ""},
		{"limits.cpu", "init", "", "4", ""},
		{"limits.hugepages-2Mi", "main", "", "0", ""},
		{"limits.gpu", "main", "", "", "unsupported container resource : limits.gpu"},
		{"limits.cpu", "nope", "", "", "container nope not found"},
	} {
		ref := &corev1.ResourceFieldSelector{ContainerName: tc.container, Resource: tc.resource}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := ResourceValue(pod, ref, alloc)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s/%s: err = %v, want %q", tc.container, tc.resource, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s/%s /%s = %q, %v; want %q", tc.container, tc.resource, tc.divisor, got, err, tc.want)
		}
	}
}

func TestCollectData(t *testing.T) {
	mode := int32(0o644)
	items := []corev1.DownwardAPIVolumeFile{
		{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}, Mode: func() *int32 { m := int32(0o400); return &m }()},
		{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "main", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
	}
	if !NeedsAllocatable(items) || NeedsAllocatable(items[:2]) {
		t.Error("NeedsAllocatable is wrong")
	}
	got, err := CollectData(items, testPod(), nil, &mode)
	if err != nil {
		t.Fatal(err)
	}
	if string(got["name"].Data) != "web" || got["name"].Mode != 0o644 || got["labels"].Mode != 0o400 || string(got["cpu"].Data) != "250" {
		t.Errorf("payload %+v", got)
	}
	bad := append(items, corev1.DownwardAPIVolumeFile{Path: "x", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.bogus"}},
		corev1.DownwardAPIVolumeFile{Path: "y", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "gone", Resource: "limits.cpu"}})
	if _, err := CollectData(bad, testPod(), nil, &mode); err == nil || !strings.Contains(err.Error(), "unsupported fieldPath: spec.bogus") || !strings.Contains(err.Error(), "container gone not found") {
		t.Errorf("errors of all items not reported: %v", err)
	}
}
