package plugins

import corev1 "k8s.io/api/core/v1"

// SpecName is the volume's name as upstream names it: the PV's name for
// persistent volumes, the pod's volume name otherwise.
func SpecName(spec *Spec) string {
	if spec.PV != nil {
		return spec.PV.Name
	}
	return spec.Name
}

// PodScopedVolumeName is the unique name of a volume that belongs to one
// pod, as upstream forms it: "<plugin>/<pod uid>-<spec name>".
func PodScopedVolumeName(pluginName string, pod *corev1.Pod, spec *Spec) string {
	return pluginName + "/" + string(pod.UID) + "-" + SpecName(spec)
}
