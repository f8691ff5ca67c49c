package pods

import (
	"fmt"
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandboxConfig is the pod's sandbox: host network (pods use the node's
// address), its own PID namespace per container unless the pod shares
// one, the log directory of its containers.
func (w *Workers) sandboxConfig(pod *corev1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[labelPodName] = pod.Name
	labels[labelPodNamespace] = pod.Namespace
	labels[labelPodUID] = string(pod.UID)
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	pid := runtimeapi.NamespaceMode_CONTAINER
	if (pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace) || pod.Spec.HostPID {
		pid = runtimeapi.NamespaceMode_POD
		if pod.Spec.HostPID {
			pid = runtimeapi.NamespaceMode_NODE
		}
	}
	ipc := runtimeapi.NamespaceMode_POD
	if pod.Spec.HostIPC {
		ipc = runtimeapi.NamespaceMode_NODE
	}
	hostname, _ := os.Hostname()
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: pid, Ipc: ipc},
		Privileged:       podPrivileged(pod),
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = append(sc.SupplementalGroups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
	}
	sysctls := map[string]string{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, s := range psc.Sysctls {
			sysctls[s.Name] = s.Value
		}
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   attempt,
		},
		Hostname:     hostname,
		LogDirectory: w.podLogDir(pod),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: sc,
			Sysctls:         sysctls,
		},
	}
}

func podPrivileged(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if isPrivileged(&list[i]) {
				return true
			}
		}
	}
	return false
}

func isPrivileged(c *corev1.Container) bool {
	return c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
}

// containerLabels and containerAnnotations identify a container instance
// after an agent restart.
func containerLabels(pod *corev1.Pod, c *corev1.Container) map[string]string {
	return map[string]string{
		labelPodName:       pod.Name,
		labelPodNamespace:  pod.Namespace,
		labelPodUID:        string(pod.UID),
		labelContainerName: c.Name,
	}
}

func containerAnnotations(pod *corev1.Pod, c *corev1.Container, restart int32) map[string]string {
	a := map[string]string{
		annoRestartCount:  strconv.Itoa(int(restart)),
		annoTermMsgPath:   c.TerminationMessagePath,
		annoTermMsgPolicy: string(c.TerminationMessagePolicy),
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		a[annoPodGracePeriod] = strconv.FormatInt(*pod.Spec.TerminationGracePeriodSeconds, 10)
	}
	return a
}

// securityContext is the container's effective security context: the
// container's fields over the pod's.
func securityContext(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
	}
	if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		out.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostPID {
		out.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		out.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			out.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			out.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		out.SupplementalGroups = append(out.SupplementalGroups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			out.SupplementalGroups = append(out.SupplementalGroups, *psc.FSGroup)
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
		}
		if sc.RunAsGroup != nil {
			out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
		}
		out.Privileged = sc.Privileged != nil && *sc.Privileged
		out.ReadonlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		if sc.AllowPrivilegeEscalation != nil {
			out.NoNewPrivs = !*sc.AllowPrivilegeEscalation
		}
		if caps := sc.Capabilities; caps != nil {
			out.Capabilities = &runtimeapi.Capability{}
			for _, a := range caps.Add {
				out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(a))
			}
			for _, d := range caps.Drop {
				out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(d))
			}
		}
	}
	return out
}

// runAsNonRoot returns the effective runAsNonRoot.
func runAsNonRoot(pod *corev1.Pod, c *corev1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil && *pod.Spec.SecurityContext.RunAsNonRoot
}

// verifyRunAsNonRoot refuses, as the kubelet does, a container that must
// not run as root but would: runAsUser 0, or no runAsUser and an image
// whose user is root or cannot be told.
func verifyRunAsNonRoot(pod *corev1.Pod, c *corev1.Container, sc *runtimeapi.LinuxContainerSecurityContext, img *runtimeapi.Image) error {
	if !runAsNonRoot(pod, c) {
		return nil
	}
	who := fmt.Sprintf("(pod: %q, container: %s)", formatPod(pod), c.Name)
	if sc.RunAsUser != nil {
		if sc.RunAsUser.Value == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy %s", who)
		}
		return nil
	}
	switch {
	case img.GetUid() != nil && img.GetUid().Value == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root %s", who)
	case img.GetUid() == nil && img.GetUsername() != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root %s", img.GetUsername(), who)
	case img.GetUid() == nil:
		return fmt.Errorf("container has runAsNonRoot and image will run as root %s", who)
	}
	return nil
}

// formatPod is upstream's name_namespace(uid).
func formatPod(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// Upstream's cgroup arithmetic for CPU.
const (
	cpuPeriod  = 100000
	minShares  = 2
	maxShares  = 262144
	minQuotaUs = 1000
)

// linuxResources maps requests and limits to cgroup settings as the
// kubelet does: shares from the CPU request (or limit), a CFS quota from
// the CPU limit, the memory limit, and the OOM score by QoS class.
func linuxResources(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	cpuReq, hasReq := c.Resources.Requests[corev1.ResourceCPU]
	cpuLim, hasLim := c.Resources.Limits[corev1.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	shares := int64(minShares)
	if hasReq {
		shares = max(min(cpuReq.MilliValue()*1024/1000, maxShares), minShares)
	}
	r.CpuShares = shares
	if hasLim {
		r.CpuPeriod = cpuPeriod
		r.CpuQuota = max(cpuLim.MilliValue()*cpuPeriod/1000, minQuotaUs)
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = mem.Value()
	}
	switch pod.Status.QOSClass {
	case corev1.PodQOSGuaranteed:
		r.OomScoreAdj = -997
	case corev1.PodQOSBestEffort:
		r.OomScoreAdj = 1000
	default:
		r.OomScoreAdj = 2
		if mem, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			r.OomScoreAdj = burstableOOM(mem.Value())
		}
	}
	return r
}

// burstableOOM is upstream's 1000 - 1000*request/capacity, kept in
// [3, 999].
func burstableOOM(request int64) int64 {
	_, capMem := nodeCapacity()
	total := capMem.Value()
	if total <= 0 {
		return 2
	}
	adj := 1000 - (1000*request)/total
	return max(min(adj, 999), 3)
}
