package attachdetach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/csi/kube"
	"volplane/internal/logging"
)

// Event reasons, upstream's.
const (
	reasonFailedAttach     = "FailedAttachVolume"
	reasonSuccessfulAttach = "SuccessfulAttachVolume"
)

// attachment is a VolumeAttachment with the volume it attaches.
type attachment struct {
	va   *storagev1.VolumeAttachment
	pv   string
	name v1.UniqueVolumeName
}

// reconcile runs one pass:
//
//  1. desired state from pods (populate), actual state from
//     VolumeAttachments (attached when status.attached);
//  2. detach: an attachment no pod on its node needs is deleted once safe:
//     the node does not list it in status.volumesInUse, or the node has
//     the out-of-service taint, or (unless disabled) the node is not
//     Ready and MaxWaitForUnmountDuration has passed;
//  3. node status: each managed node's status.volumesAttached lists its
//     attached volumes minus those being detached, written before any
//     attachment is deleted;
//  4. attach: a VolumeAttachment for every needed volume without one; a
//     single-node volume attached elsewhere gets a Multi-Attach error on
//     the pods instead; attach results become events on the pods.
func (c *Controller) reconcile(ctx context.Context) error {
	desired, managed, err := c.populate()
	if err != nil {
		return err
	}
	vas, err := c.attachments.List(labels.Everything())
	if err != nil {
		return err
	}
	now := c.now()
	seen := map[string]bool{}
	var all []attachment
	detaching := map[string]bool{}
	var toDelete []attachment
	listed := map[types.UID]bool{}
	for _, va := range vas {
		listed[va.UID] = true
		a, ok := c.ours(va, managed)
		if !ok {
			continue
		}
		all = append(all, a)
		if c.beingDeleted(va) {
			// Whether or not a pod needs it again: it is re-attached
			// once it is gone.
			detaching[va.Name] = true
			continue
		}
		node := va.Spec.NodeName
		if desired[node][a.name] != nil {
			continue
		}
		seen["since/"+va.Name] = true
		since, ok := c.undesiredSince[va.Name]
		if !ok {
			since = now
			c.undesiredSince[va.Name] = now
		}
		n := managed[node]
		if !c.safeToDetach(ctx, n, a, now.Sub(since)) {
			continue
		}
		detaching[va.Name] = true
		toDelete = append(toDelete, a)
	}
	for name := range c.undesiredSince {
		if !seen["since/"+name] {
			delete(c.undesiredSince, name)
		}
	}
	for uid := range c.deleted {
		if !listed[uid] {
			delete(c.deleted, uid)
		}
	}

	statusOK, errs := c.updateNodeStatus(ctx, managed, all, detaching)
	for _, a := range toDelete {
		if n := a.va.Spec.NodeName; managed[n] != nil && !statusOK[n] {
			continue // the node must stop seeing the volume attached first
		}
		uid := a.va.UID
		err := c.client.StorageV1().VolumeAttachments().Delete(ctx, a.va.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("detaching %s: %w", a.va.Name, err))
			continue
		}
		c.deleted[uid] = true
		logging.FromContext(ctx).Info("detaching volume", "volume", a.pv, "node", a.va.Spec.NodeName, "attachment", a.va.Name)
	}

	byPV := map[string][]attachment{}
	for _, a := range all {
		byPV[a.pv] = append(byPV[a.pv], a)
	}
	for _, node := range sortedKeys(desired) {
		for _, name := range sortedKeys(desired[node]) {
			if err := c.attach(ctx, managed[node], node, desired[node][name], byPV, desired, seen); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k := range c.reported {
		if !seen[k] {
			delete(c.reported, k)
		}
	}
	return errors.Join(errs...)
}

// beingDeleted: va is being deleted, or this controller deleted it and
// the informer has not shown that yet.
func (c *Controller) beingDeleted(va *storagev1.VolumeAttachment) bool {
	return va.DeletionTimestamp != nil || c.deleted[va.UID]
}

// ours returns the attachment of a VolumeAttachment this controller
// manages: a PV's, on a managed node or a node that is gone.
func (c *Controller) ours(va *storagev1.VolumeAttachment, managed map[string]*v1.Node) (attachment, bool) {
	src := va.Spec.Source.PersistentVolumeName
	if src == nil {
		return attachment{}, false
	}
	if managed[va.Spec.NodeName] == nil {
		if _, err := c.nodes.Get(va.Spec.NodeName); !apierrors.IsNotFound(err) {
			return attachment{}, false
		}
	}
	pv, err := c.volumes.Get(*src)
	if err != nil || pv.Spec.CSI == nil {
		return attachment{}, false
	}
	return attachment{va: va, pv: *src, name: kube.UniqueVolumeName(pv.Spec.CSI.Driver, pv.Spec.CSI.VolumeHandle)}, true
}

// safeToDetach decides whether an attachment nobody needs may go now.
// n is nil for a node that is gone.
func (c *Controller) safeToDetach(ctx context.Context, n *v1.Node, a attachment, waited time.Duration) bool {
	inUse := n == nil || slices.Contains(n.Status.VolumesInUse, a.name)
	switch {
	case !inUse:
		return true
	case outOfService(n):
		logging.FromContext(ctx).Info("detaching a volume in use from an out-of-service node", "volume", a.pv, "node", a.va.Spec.NodeName)
		return true
	case nodeHealthy(n) || waited <= c.cfg.MaxWaitForUnmountDuration:
		return false
	case c.cfg.DisableForceDetachOnTimeout:
		logging.FromContext(ctx).Warn("volume is still in use on an unhealthy node after the unmount timeout; force detach is disabled",
			"volume", a.pv, "node", a.va.Spec.NodeName)
		return false
	}
	logging.FromContext(ctx).Warn("force-detaching a volume from an unhealthy node after the unmount timeout",
		"volume", a.pv, "node", a.va.Spec.NodeName, "timeout", c.cfg.MaxWaitForUnmountDuration)
	return true
}

// updateNodeStatus writes status.volumesAttached of every managed node
// whose list differs; ok names the nodes whose list is right.
func (c *Controller) updateNodeStatus(ctx context.Context, managed map[string]*v1.Node, all []attachment, detaching map[string]bool) (map[string]bool, []error) {
	want := map[string][]v1.AttachedVolume{}
	for _, a := range all {
		if a.va.Status.Attached && !detaching[a.va.Name] {
			n := a.va.Spec.NodeName
			want[n] = append(want[n], v1.AttachedVolume{Name: a.name})
		}
	}
	ok := map[string]bool{}
	var errs []error
	for name, n := range managed {
		w := want[name]
		sort.Slice(w, func(i, j int) bool { return w[i].Name < w[j].Name })
		have := slices.Clone(n.Status.VolumesAttached)
		sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
		if slices.Equal(have, w) {
			ok[name] = true
			continue
		}
		if w == nil {
			w = []v1.AttachedVolume{}
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"volumesAttached": w}})
		if _, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			errs = append(errs, fmt.Errorf("updating volumesAttached of node %s: %w", name, err))
			continue
		}
		ok[name] = true
	}
	return ok, errs
}

// attach makes sure v has a VolumeAttachment on node, and reports how it
// goes on the pods that need it. n is the Node as this pass read it:
// SuccessfulAttachVolume goes to the pods only while its
// status.volumesAttached does not list the volume yet, that is when this
// controller sees the attach complete, as upstream reports it from its
// attach operation alone (a pod that comes for a volume already attached,
// or a restart, brings no event).
func (c *Controller) attach(ctx context.Context, n *v1.Node, node string, v *volumeToAttach, byPV map[string][]attachment, desired desiredState, seen map[string]bool) error {
	vaName := kube.AttachmentName(v.handle, v.driver, node)
	for _, a := range byPV[v.pvName] {
		if a.va.Name != vaName {
			continue
		}
		switch {
		case c.beingDeleted(a.va):
			// Detaching: attached again once it is gone.
		case a.va.Status.Attached:
			if n == nil || slices.ContainsFunc(n.Status.VolumesAttached, func(av v1.AttachedVolume) bool { return av.Name == v.name }) {
				break
			}
			for _, pod := range v.pods {
				c.reportOnce(seen, "ok/"+string(a.va.UID)+"/"+string(pod.UID), pod, v1.EventTypeNormal, reasonSuccessfulAttach,
					fmt.Sprintf("AttachVolume.Attach succeeded for volume %q ", v.pvName))
			}
		case a.va.Status.AttachError != nil:
			for _, pod := range v.pods {
				c.reportOnce(seen, "err/"+a.va.Name+"/"+a.va.Status.AttachError.Time.String()+"/"+string(pod.UID), pod, v1.EventTypeWarning, reasonFailedAttach,
					fmt.Sprintf("AttachVolume.Attach failed for volume %q : %s", v.pvName, a.va.Status.AttachError.Message))
			}
		}
		return nil
	}
	if !v.multiAttach {
		var others []string
		for _, a := range byPV[v.pvName] {
			if a.va.Spec.NodeName != node {
				others = append(others, a.va.Spec.NodeName)
			}
		}
		if len(others) > 0 {
			c.reportMultiAttach(seen, v, others, desired)
			return nil
		}
	}
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: vaName},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: v.driver,
			NodeName: node,
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: &v.pvName},
		},
	}
	_, err := c.client.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// Created by an earlier pass whose write the informer has not
		// delivered yet: nothing new to log.
	case err != nil:
		return fmt.Errorf("attaching %s to %s: %w", v.pvName, node, err)
	default:
		logging.FromContext(ctx).Info("attaching volume", "volume", v.pvName, "node", node, "attachment", vaName)
	}
	byPV[v.pvName] = append(byPV[v.pvName], attachment{va: va, pv: v.pvName, name: v.name})
	return nil
}

// reportMultiAttach tells the pods waiting for a single-node volume that
// it is attached elsewhere, naming the pods there in their namespace, as
// upstream does.
func (c *Controller) reportMultiAttach(seen map[string]bool, v *volumeToAttach, otherNodes []string, desired desiredState) {
	for _, pod := range v.pods {
		var users []string
		for _, n := range otherNodes {
			if other := desired[n][v.name]; other != nil {
				for _, p := range other.pods {
					if p.Namespace == pod.Namespace {
						users = append(users, p.Name)
					}
				}
			}
		}
		suffix := "Volume is already exclusively attached to one node and can't be attached to another"
		if len(users) > 0 {
			slices.Sort(users)
			suffix = "Volume is already used by pod(s) " + strings.Join(users, ", ")
		}
		c.reportOnce(seen, "multi/"+v.pvName+"/"+string(pod.UID), pod, v1.EventTypeWarning, reasonFailedAttach,
			fmt.Sprintf("Multi-Attach error for volume %q %s", v.pvName, suffix))
	}
}

// reportOnce emits an event the first time key is seen; the key is
// forgotten once a pass no longer sees it.
func (c *Controller) reportOnce(seen map[string]bool, key string, pod *v1.Pod, eventType, reason, msg string) {
	seen[key] = true
	if c.reported[key] {
		return
	}
	c.reported[key] = true
	c.recorder.Event(pod, eventType, reason, msg)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
