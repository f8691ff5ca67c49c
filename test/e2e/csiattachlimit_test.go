package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/hostopstest"
)

// TestCSIAttachLimitRejectsPod is upstream's answer to a node out of
// attachment slots (KEP-4876), with a real driver that runs out: a second
// `volplane csi` in its own process allowing one volume per node
// (--max-volumes-per-node 1, so its ControllerPublishVolume answers
// ResourceExhausted for a second volume), whose CSIDriver sets
// nodeAllocatableUpdatePeriodSeconds. A first pod's volume is attached; a
// second pod, put on the node by spec.nodeName past the scheduler (whose
// count of the node's slots would keep it away, where a count gone stale
// would not), waits for its volume. Then:
//   - its VolumeAttachment's attachError has errorCode 8 (ResourceExhausted);
//   - once the kubelet's wait (2m3s) is over the pod is rejected: one
//     Warning event VolumeAttachmentLimitExceeded with upstream's text, the
//     pod Failed with that reason and "Pod was rejected: " + the text, no
//     container ever started, the object kept;
//   - its VolumeAttachment goes (the attach/detach controller lets go of a
//     finished pod's volumes) and no mount is left that was not there
//     before it, while the first pod runs on with its volume;
//   - the rejected pod is then deleted like any finished pod.
//
// It takes over two minutes: the wait is upstream's podAttachAndMountTimeout,
// which has no knob.
func TestCSIAttachLimitRejectsPod(t *testing.T) {
	hostopstest.RequireRoot(t)
	const (
		driver = "limit.csi.volplane.io"
		node   = "e2e-node"
		class  = "limit"
		reason = "VolumeAttachmentLimitExceeded"
		text   = "Node has reached its volume attachment limit, rejecting pod. unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[]: context deadline exceeded"
	)
	p, base := startUpForDriver(t, driver)
	p.WaitPodsAccepted(t)
	startDriver(t, base, driver, node, p.pluginsRegistry(), "--max-volumes-per-node", "1")
	cs, ctx := p.Client(), context.Background()
	waitCSINodeDriver(t, cs, node, driver)

	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+driver+`}
spec: {attachRequired: true, nodeAllocatableUpdatePeriodSeconds: 10}
---`+immediateClassYAML(class, driver)+"---"+claimYAML("limit-a", class, "64Mi")+"---"+claimYAML("limit-b", class, "64Mi"))
	pvA, pvB := waitBoundPV(t, cs, "limit-a", nil), waitBoundPV(t, cs, "limit-b", nil)

	p.Apply(t, claimPodYAML("limit-first", "limit-a", "exec sleep 3600"))
	first := waitPodRunning(t, p, "limit-first")
	mountsBefore := hostopstest.MountsUnder(t, p.DataDir)
	// Past the scheduler, straight onto the node.
	second := strings.Replace(claimPodYAML("limit-second", "limit-b", "exec sleep 3600"), "\nspec:\n", "\nspec:\n  nodeName: "+node+"\n", 1)
	p.Apply(t, second)

	// The attacher records the driver's answer, code and all.
	va := vaName(pvB.Spec.CSI.VolumeHandle, driver, node)
	eventually(t, 2*time.Minute, func() error {
		a, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if e := a.Status.AttachError; e == nil || e.ErrorCode == nil || *e.ErrorCode != int32(codes.ResourceExhausted) {
			return fmt.Errorf("VolumeAttachment %s status %+v, want an attachError with errorCode 8", va, a.Status)
		}
		return nil
	})

	// The pod is rejected once the wait for its volume is over.
	var pod *v1.Pod
	eventually(t, 4*time.Minute, func() error {
		var err error
		if pod, err = cs.CoreV1().Pods("default").Get(ctx, "limit-second", metav1.GetOptions{}); err != nil {
			return err
		}
		if pod.Status.Phase != v1.PodFailed {
			return fmt.Errorf("pod limit-second is %s; events:\n%s", pod.Status.Phase, p.eventsOf("limit-second"))
		}
		return nil
	})
	if pod.Status.Reason != reason || pod.Status.Message != "Pod was rejected: "+text {
		t.Errorf("pod status reason %q message %q, want %q %q", pod.Status.Reason, pod.Status.Message, reason, "Pod was rejected: "+text)
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.ContainerID != "" || c.RestartCount != 0 || c.State.Terminated == nil || c.State.Terminated.Reason != "ContainerStatusUnknown" {
			t.Errorf("container %s of the rejected pod: %+v, want never run, terminated ContainerStatusUnknown", c.Name, c)
		}
	}
	events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=limit-second"})
	if err != nil {
		t.Fatal(err)
	}
	rejections := 0
	for _, e := range events.Items {
		if e.Reason != reason {
			continue
		}
		rejections += max(int(e.Count), 1)
		if e.Type != v1.EventTypeWarning || e.Message != text || e.InvolvedObject.UID != pod.UID {
			t.Errorf("event %s %s %q on %s, want Warning %q on the pod", e.Type, e.Reason, e.Message, e.InvolvedObject.UID, text)
		}
	}
	if rejections != 1 {
		t.Errorf("%d %s events, want 1; events:\n%s", rejections, reason, p.eventsOf("limit-second"))
	}

	// Its volume is let go and nothing of it stays mounted.
	eventually(t, 2*time.Minute, func() error {
		if a, err := cs.StorageV1().VolumeAttachments().Get(ctx, va, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("VolumeAttachment %s of the rejected pod's volume still there: %v %+v", va, err, a.Status)
		}
		if now := hostopstest.MountsUnder(t, p.DataDir); !sameMounts(now, mountsBefore) {
			return fmt.Errorf("mounts under the data dir %v, want those before the second pod %v", now, mountsBefore)
		}
		return nil
	})
	// The rejected pod stays, Failed; the first one runs on.
	if got, err := cs.CoreV1().Pods("default").Get(ctx, "limit-second", metav1.GetOptions{}); err != nil || got.Status.Phase != v1.PodFailed {
		t.Errorf("the rejected pod is not kept as a Failed pod: %v", err)
	}
	if got, err := cs.CoreV1().Pods("default").Get(ctx, "limit-first", metav1.GetOptions{}); err != nil || got.Status.Phase != v1.PodRunning || got.UID != first.UID {
		t.Errorf("the first pod does not run on: %v", err)
	}
	if publish := csiPublishPath(p.kubeletDir(), first.UID, pvA.Name); !slices.Contains(hostopstest.MountsUnder(t, p.DataDir), publish) {
		t.Errorf("the first pod's volume %s is no longer mounted", publish)
	}
	p.MustKubectl(t, "delete", "pod", "limit-first", "limit-second", "--timeout=2m")
}

// sameMounts reports whether a and b list the same mount points.
func sameMounts(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
