package pods

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// envSource reads what env and envFrom reference, with the node's
// identity.
type envSource interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// envInput is what a container's environment is computed from.
type envInput struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	NodeIP    string
	// APIHost and APIPort are the API's real address for the
	// KUBERNETES_SERVICE_* variables.
	APIHost string
	APIPort int
	// NodeCPU and NodeMemory stand for limits a container does not set,
	// in resourceFieldRef.
	NodeCPU    resource.Quantity
	NodeMemory resource.Quantity
	Source     envSource
}

// envVar is one variable of the container's environment.
type envVar struct{ Name, Value string }

// makeEnv computes a container's environment as the kubelet does: the
// kubernetes Service variables first, then envFrom in order, then env in
// order, each $(VAR) in env values expanded from what came before; later
// names replace earlier ones in place.
func makeEnv(ctx context.Context, in envInput) ([]envVar, error) {
	var out []envVar
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			out[i].Value = value
			return
		}
		index[name] = len(out)
		out = append(out, envVar{name, value})
	}
	for _, v := range serviceEnv(in.APIHost, in.APIPort) {
		set(v.Name, v.Value)
	}
	ns := in.Pod.Namespace
	for _, from := range in.Container.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := in.Source.ConfigMap(ctx, ns, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, getError("configmap", ns, from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := in.Source.Secret(ctx, ns, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, getError("secret", ns, from.SecretRef.Name, err)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			continue
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range in.Container.Env {
		value := e.Value
		if value != "" || e.ValueFrom == nil {
			value = expand(value, envLookup(out))
			set(e.Name, value)
			continue
		}
		v, skip, err := resolveValueFrom(ctx, in, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if !skip {
			set(e.Name, v)
		}
	}
	return out, nil
}

// getError is the kubelet's wording for a ConfigMap or Secret it could
// not read.
func getError(kind, namespace, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found", kind, name)
	}
	return fmt.Errorf("couldn't get %s %s/%s: %w", kind, namespace, name, err)
}

// serviceEnv is the kubernetes Service's variables, pointing at the API's
// real address: with host networking and no kube-proxy the ClusterIP
// leads nowhere.
func serviceEnv(host string, port int) []envVar {
	p := strconv.Itoa(port)
	url := "tcp://" + joinHostPort(host, p)
	prefix := "KUBERNETES_PORT_" + p + "_TCP"
	return []envVar{
		{"KUBERNETES_SERVICE_HOST", host},
		{"KUBERNETES_SERVICE_PORT", p},
		{"KUBERNETES_SERVICE_PORT_HTTPS", p},
		{"KUBERNETES_PORT", url},
		{prefix, url},
		{prefix + "_PROTO", "tcp"},
		{prefix + "_PORT", p},
		{prefix + "_ADDR", host},
	}
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// resolveValueFrom resolves one env valueFrom; skip is true for an
// optional key or object that is missing.
func resolveValueFrom(ctx context.Context, in envInput, from *corev1.EnvVarSource) (string, bool, error) {
	ns := in.Pod.Namespace
	switch {
	case from.FieldRef != nil:
		v, err := fieldValue(in.Pod, from.FieldRef.FieldPath, in.NodeIP)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := resourceValue(in, from.ResourceFieldRef)
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := in.Source.ConfigMap(ctx, ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, getError("configmap", ns, ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, false, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := in.Source.Secret(ctx, ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, getError("secret", ns, ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), false, nil
	}
	return "", true, nil
}

// fieldValue is the downward API value of a pod field.
func fieldValue(pod *corev1.Pod, path, nodeIP string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		// Pods use the host's network: both are the node's address.
		return nodeIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", path)
}

// subscript splits "prefix['key']".
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// formatMap renders a map as the downward API does: key="value" lines,
// sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// resourceValue is the value of a resourceFieldRef: the container's
// request or limit in units of the divisor, rounded up; a limit the
// container does not set is the node's capacity.
func resourceValue(in envInput, ref *corev1.ResourceFieldSelector) (string, error) {
	c := in.Container
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		found := false
		for _, list := range [][]corev1.Container{in.Pod.Spec.Containers, in.Pod.Spec.InitContainers} {
			for i := range list {
				if list[i].Name == ref.ContainerName {
					c, found = &list[i], true
				}
			}
		}
		if !found {
			return "", fmt.Errorf("container %q not found in pod", ref.ContainerName)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	limit := func(name corev1.ResourceName, node resource.Quantity) resource.Quantity {
		if q, ok := c.Resources.Limits[name]; ok {
			return q
		}
		return node
	}
	request := func(name corev1.ResourceName) resource.Quantity {
		if q, ok := c.Resources.Requests[name]; ok {
			return q
		}
		return resource.Quantity{}
	}
	switch ref.Resource {
	case "limits.cpu":
		return cpuString(limit(corev1.ResourceCPU, in.NodeCPU), divisor), nil
	case "requests.cpu":
		return cpuString(request(corev1.ResourceCPU), divisor), nil
	case "limits.memory":
		return valueString(limit(corev1.ResourceMemory, in.NodeMemory), divisor), nil
	case "requests.memory":
		return valueString(request(corev1.ResourceMemory), divisor), nil
	case "limits.ephemeral-storage":
		return valueString(limit(corev1.ResourceEphemeralStorage, resource.Quantity{}), divisor), nil
	case "requests.ephemeral-storage":
		return valueString(request(corev1.ResourceEphemeralStorage), divisor), nil
	}
	return "", fmt.Errorf("unsupported container resource: %v", ref.Resource)
}

func cpuString(q, divisor resource.Quantity) string {
	return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10)
}

func valueString(q, divisor resource.Quantity) string {
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10)
}

// nodeCapacity is what resourceFieldRef reports for an unset limit.
func nodeCapacity() (cpu, memory resource.Quantity) {
	cpu = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
	memory = resource.Quantity{}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return cpu, memory
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				memory = *resource.NewQuantity(kb*1024, resource.BinarySI)
			}
		}
	}
	return cpu, memory
}

// envLookup returns a lookup over the variables so far.
func envLookup(vars []envVar) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := len(vars) - 1; i >= 0; i-- {
			if vars[i].Name == name {
				return vars[i].Value, true
			}
		}
		return "", false
	}
}

// expand replaces $(VAR) with the variable's value as the kubelet does:
// $$ is an escaped $, a reference to an unknown variable stays as written.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// clientEnvSource reads with the node's client.
type clientEnvSource struct{ client kubernetes.Interface }

func (s clientEnvSource) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	return s.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (s clientEnvSource) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	return s.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}
