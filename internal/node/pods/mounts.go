package pods

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/logging"
	"volplane/internal/node/volumemanager"
)

// mountInput is what a container's mounts are built from.
type mountInput struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	Env       []envVar
	// Volumes are the pod's mounted volumes (volumemanager.PodVolumes).
	Volumes map[string]volumemanager.MountedVolume
	// PrepareSubPath is the volume manager's safe subPath call.
	PrepareSubPath func(context.Context, volumemanager.SubPathRequest) (string, error)
	Privileged     bool
	// EtcHosts is the host path of the pod's managed /etc/hosts, ""
	// for none; TermLog the host file behind terminationMessagePath.
	EtcHosts string
	TermLog  string
}

// makeMounts builds a container's mounts from its volumeMounts: each a
// bind mount of the volume's host path, or of the path PrepareSubPath
// returns for a subPath (subPathExpr expanded from the container's
// environment first). The joined path is never built here.
func makeMounts(ctx context.Context, in mountInput) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	hasEtcHosts := false
	for i, m := range in.Container.VolumeMounts {
		vol, ok := in.Volumes[m.Name]
		if !ok || vol.HostPath == "" {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", m.Name, in.Container.Name)
		}
		hostPath := vol.HostPath
		subPath := m.SubPath
		if m.SubPathExpr != "" {
			var err error
			if subPath, err = expandSubPath(m, in.Env); err != nil {
				return nil, err
			}
		}
		if subPath != "" {
			if filepath.IsAbs(subPath) {
				return nil, fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
			}
			if hasBacksteps(subPath) {
				return nil, fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
			}
			p, err := in.PrepareSubPath(ctx, volumemanager.SubPathRequest{
				Pod:        in.Pod,
				Container:  in.Container.Name,
				MountIndex: i,
				Volume:     m.Name,
				SubPath:    subPath,
			})
			if err != nil {
				// The detail stays in the log: it names host paths, which
				// upstream's kubelet keeps from the pod's status and events.
				logging.FromContext(ctx).Warn("cannot prepare a subPath", "pod", in.Pod.Namespace+"/"+in.Pod.Name,
					"container", in.Container.Name, "volumeMount", m.Name, "err", err)
				return nil, fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q", m.Name, in.Container.Name)
			}
			hostPath = p
		}
		prop, err := translatePropagation(m.MountPropagation, in.Privileged)
		if err != nil {
			return nil, err
		}
		if m.MountPath == "/etc/hosts" {
			hasEtcHosts = true
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath:  m.MountPath,
			HostPath:       hostPath,
			Readonly:       m.ReadOnly || vol.ReadOnly,
			SelinuxRelabel: vol.SELinuxRelabel,
			Propagation:    prop,
		})
	}
	if in.EtcHosts != "" && !hasEtcHosts {
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: in.EtcHosts})
	}
	if in.TermLog != "" && in.Container.TerminationMessagePath != "" {
		out = append(out, &runtimeapi.Mount{ContainerPath: in.Container.TerminationMessagePath, HostPath: in.TermLog})
	}
	return out, nil
}

// expandSubPath expands a subPathExpr from the container's environment;
// the result must be a relative path without "..".
func expandSubPath(m corev1.VolumeMount, env []envVar) (string, error) {
	p := expand(m.SubPathExpr, envLookup(env))
	if filepath.IsAbs(p) {
		return "", fmt.Errorf("unable to expand subPath %q for volume %q: must be a relative path", m.SubPathExpr, m.Name)
	}
	if hasBacksteps(p) {
		return "", fmt.Errorf("unable to expand subPath %q for volume %q: must not contain '..'", m.SubPathExpr, m.Name)
	}
	return p, nil
}

func hasBacksteps(p string) bool {
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// translatePropagation maps mountPropagation to CRI's: None (the default)
// private, HostToContainer rslave, Bidirectional rshared for privileged
// containers only.
func translatePropagation(mode *corev1.MountPropagationMode, privileged bool) (runtimeapi.MountPropagation, error) {
	if mode == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	}
	switch *mode {
	case corev1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case corev1.MountPropagationBidirectional:
		if !privileged {
			return 0, fmt.Errorf("mount propagation %s is only allowed for privileged containers", *mode)
		}
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, fmt.Errorf("invalid mount propagation mode %q", *mode)
}

// makeDevices maps volumeDevices to the block volumes' device nodes.
func makeDevices(c *corev1.Container, volumes map[string]volumemanager.MountedVolume) ([]*runtimeapi.Device, error) {
	var out []*runtimeapi.Device
	for _, d := range c.VolumeDevices {
		vol, ok := volumes[d.Name]
		if !ok || vol.DevicePath == "" {
			return nil, fmt.Errorf("cannot find block volume %q to map into container %q", d.Name, c.Name)
		}
		out = append(out, &runtimeapi.Device{ContainerPath: d.DevicePath, HostPath: vol.DevicePath, Permissions: "mrw"})
	}
	return out, nil
}
