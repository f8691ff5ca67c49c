package downwardapi

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"volplane/internal/node/plugins/atomicwriter"
)

// NeedsAllocatable reports whether items read a container resource, for
// which CollectData needs the node's allocatable.
func NeedsAllocatable(items []corev1.DownwardAPIVolumeFile) bool {
	for _, it := range items {
		if it.ResourceFieldRef != nil {
			return true
		}
	}
	return false
}

// CollectData is what a downwardAPI volume (or a projected downwardAPI
// source) shows: each item's field of the pod or resource of a container
// at its path with its mode. A container without a cpu, memory or
// ephemeral-storage limit reads the node's allocatable instead, as
// upstream does. Errors of all items are returned together.
func CollectData(items []corev1.DownwardAPIVolumeFile, pod *corev1.Pod, allocatable corev1.ResourceList, defaultMode *int32) (atomicwriter.Payload, error) {
	if defaultMode == nil {
		return nil, fmt.Errorf("no defaultMode used, not even the default value for it")
	}
	payload := make(atomicwriter.Payload, len(items))
	var errs []error
	for _, it := range items {
		mode := *defaultMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = FieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			value, err = ResourceValue(pod, it.ResourceFieldRef, allocatable)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		payload[it.Path] = atomicwriter.File{Data: []byte(value), Mode: mode}
	}
	return payload, errors.Join(errs...)
}

// FieldValue reads fieldPath of pod: upstream's metadata fields of a
// downwardAPI volume (name, namespace, uid, labels, annotations, one
// label or annotation by subscript) and, beyond what the API lets a
// volume ask, the fields env can read (spec.nodeName,
// spec.serviceAccountName, status.hostIP(s), status.podIP(s)).
func FieldValue(pod *corev1.Pod, fieldPath string) (string, error) {
	if path, sub, ok := splitSubscript(fieldPath); ok {
		switch path {
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(sub)); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Annotations[sub], nil
		case "metadata.labels":
			if errs := validation.IsQualifiedName(sub); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Labels[sub], nil
		default:
			return "", fmt.Errorf("fieldPath %q does not support subscript", fieldPath)
		}
	}
	switch fieldPath {
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		ips := make([]string, 0, len(pod.Status.HostIPs))
		for _, ip := range pod.Status.HostIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		ips := make([]string, 0, len(pod.Status.PodIPs))
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %v", fieldPath)
}

// splitSubscript splits "metadata.labels['k']" into its path and key.
func splitSubscript(fieldPath string) (string, string, bool) {
	s, ok := strings.CutSuffix(fieldPath, "']")
	if !ok {
		return fieldPath, "", false
	}
	path, sub, ok := strings.Cut(s, "['")
	if !ok || path == "" {
		return fieldPath, "", false
	}
	return path, sub, true
}

// formatMap writes key="value" lines, sorted by key, values quoted as Go
// strings: upstream's format for labels and annotations.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, m[k])
	}
	return string(b)
}

// ResourceValue reads a container's request or limit in units of the
// divisor (1 when unset), rounded up. A missing cpu, memory or
// ephemeral-storage limit is the node's allocatable.
func ResourceValue(pod *corev1.Pod, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	c := findContainer(pod, ref.ContainerName)
	if c == nil {
		return "", fmt.Errorf("container %s not found", ref.ContainerName)
	}
	limits := corev1.ResourceList{}
	for n, q := range c.Resources.Limits {
		limits[n] = q
	}
	for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := limits[n]; !ok || q.IsZero() {
			if a, ok := allocatable[n]; ok {
				limits[n] = a.DeepCopy()
			}
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	list, name, ok := limits, "", false
	if name, ok = strings.CutPrefix(ref.Resource, "limits."); !ok {
		if name, ok = strings.CutPrefix(ref.Resource, "requests."); ok {
			list = c.Resources.Requests
		}
	}
	rn := corev1.ResourceName(name)
	switch {
	case !ok:
	case rn == corev1.ResourceCPU:
		q := list[rn]
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case rn == corev1.ResourceMemory, rn == corev1.ResourceEphemeralStorage, strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
		q := list[rn]
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("unsupported container resource : %v", ref.Resource)
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
