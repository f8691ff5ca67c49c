package volumemanager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"volplane/internal/node/volumemanager/cache"
	"volplane/internal/node/volumemanager/populator"
	"volplane/internal/node/volumemanager/reconciler"
)

// expectedVolumes are the pod's volumes its containers use, sorted.
func expectedVolumes(pod *corev1.Pod) []string {
	mounts, devices := populator.UsedVolumes(pod)
	var out []string
	for _, v := range pod.Spec.Volumes {
		if mounts[v.Name] || devices[v.Name] {
			out = append(out, v.Name)
		}
	}
	sort.Strings(out)
	return out
}

// podErrorReport is how often WaitForAttachAndMount returns a pod's
// processing errors ("error processing PVC ns/c: PVC is not bound"):
// upstream's kubelet returns them at once and retries the pod about every
// 10 s (its pod workers' backoff), reporting each time. volplane returns
// them at once too, then keeps waiting between reports, so the pod
// starts as soon as the error clears rather than at the next retry.
const podErrorReport = 10 * time.Second

// WaitForAttachAndMount implements Interface.
func (m *Manager) WaitForAttachAndMount(ctx context.Context, pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	expected := expectedVolumes(pod)
	if len(expected) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, podAttachAndMountTimeout)
	defer cancel()
	m.populator.Reprocess(pod.UID)
	m.remount(pod.UID)
	for {
		actualChanged, desiredChanged := m.actual.Changed(), m.desired.Changed()
		mounted := m.PodVolumes(pod.UID)
		var unmounted []string
		for _, name := range expected {
			if _, ok := mounted[name]; !ok {
				unmounted = append(unmounted, name)
			}
		}
		if len(unmounted) == 0 {
			return nil
		}
		var report <-chan time.Time // nil: no errors to report
		if errs := m.desired.PodErrors(pod.UID); len(errs) > 0 {
			next := m.desired.ReportDue(pod.UID, time.Now(), podErrorReport)
			if next <= 0 {
				return m.mountError(pod, unmounted, joinErrors(errs))
			}
			report = time.After(next)
		}
		select {
		case <-actualChanged:
		case <-desiredChanged:
		case <-report:
		case <-ctx.Done():
			cause := ctx.Err()
			if errs := m.desired.PodErrors(pod.UID); len(errs) > 0 {
				cause = joinErrors(errs)
			}
			return m.mountError(pod, unmounted, cause)
		}
	}
}

// joinErrors is the pod's processing errors as one, in volume order,
// joined as upstream joins them.
func joinErrors(errs map[string]string) error {
	msgs := make([]string, 0, len(errs))
	for _, name := range slices.Sorted(maps.Keys(errs)) {
		msgs = append(msgs, errs[name])
	}
	return errors.New(strings.Join(msgs, "; "))
}

// mountError is upstream's error for volumes that did not come up: a
// *VolumeAttachLimitExceededError when the wait timed out and the plugin
// of an unattached volume says the node ran out of attachment slots,
// else "unmounted volumes=[...], unattached volumes=[...], failed to
// process volumes=[...]: <err>".
func (m *Manager) mountError(pod *corev1.Pod, unmounted []string, err error) error {
	desired := m.desired.PodVolumes(pod.UID)
	attached := map[corev1.UniqueVolumeName]bool{}
	for _, a := range m.cfg.AttachedVolumes() {
		attached[a.Name] = true
	}
	unattached, notInDSW := []string{}, []string{}
	var unattachedSpecs []cache.VolumeToMount
	for _, name := range unmounted {
		v, ok := desired[name]
		if !ok {
			notInDSW = append(notInDSW, name)
			continue
		}
		if v.Attachable && !reconciler.AttachVerified(v, attached, m.actual) {
			unattached = append(unattached, name)
			unattachedSpecs = append(unattachedSpecs, v)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		for _, v := range unattachedSpecs {
			// The CSI plugin refreshes the CSINode's allocatable count
			// when it says true.
			if vr, ok := v.Plugin.(exhaustVerifier); ok && vr.VerifyExhaustedResource(v.Spec) {
				return &VolumeAttachLimitExceededError{UnmountedVolumes: unmounted, UnattachedVolumes: unattached,
					VolumesNotInDSW: notInDSW, OriginalError: err}
			}
		}
	}
	return fmt.Errorf("unmounted volumes=%v, unattached volumes=%v, failed to process volumes=%v: %w",
		unmounted, unattached, notInDSW, err)
}

// WaitForUnmount implements Interface.
func (m *Manager) WaitForUnmount(ctx context.Context, pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, podAttachAndMountTimeout)
	defer cancel()
	m.populator.Trigger()
	for {
		actualChanged, desiredChanged := m.actual.Changed(), m.desired.Changed()
		left := m.actual.PodVolumes(pod.UID)
		if len(left) == 0 && !m.desired.HasPod(pod.UID) {
			return nil
		}
		select {
		case <-actualChanged:
		case <-desiredChanged:
		case <-ctx.Done():
			var names []string
			for _, v := range left {
				names = append(names, v.VolumeName)
			}
			sort.Strings(names)
			return fmt.Errorf("mounted volumes=%v: %w", names, ctx.Err())
		}
	}
}
