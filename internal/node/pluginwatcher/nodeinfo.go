package pluginwatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// NodeIDAnnotation is the Node annotation that maps each registered
// driver's name to its node ID, as a JSON object.
const NodeIDAnnotation = "csi.volume.kubernetes.io/nodeid"

// nodeInfo writes what registration publishes about the node: the
// Node's nodeid annotation and topology labels, and the CSINode. Its
// writes are serialized.
type nodeInfo struct {
	mu     sync.Mutex
	client kubernetes.Interface
	node   string
}

// driverInfo is one driver as the API shows it.
type driverInfo struct {
	name       string
	nodeID     string
	maxVolumes int64
	topology   map[string]string
}

// ensureCSINode makes sure this node's CSINode exists and is owned by
// the Node as it is now, and returns it.
func (n *nodeInfo) ensureCSINode(ctx context.Context) (*storagev1.CSINode, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.csiNode(ctx)
}

// csiNode is ensureCSINode with n.mu held. A CSINode owned by an older
// Node of the same name (deleted and registered again, and the garbage
// collector not there yet) is deleted and made again, as upstream.
func (n *nodeInfo) csiNode(ctx context.Context) (*storagev1.CSINode, error) {
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", n.node, err)
	}
	csiNodes := n.client.StorageV1().CSINodes()
	cur, err := csiNodes.Get(ctx, n.node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get CSINode %s: %w", n.node, err)
	case ownedBy(cur, node):
		return cur, nil
	default:
		if err := csiNodes.Delete(ctx, n.node, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete CSINode %s owned by an older Node: %w", n.node, err)
		}
	}
	want := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.node,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
		},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{}},
	}
	created, err := csiNodes.Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create CSINode %s: %w", n.node, err)
	}
	return created, nil
}

func ownedBy(c *storagev1.CSINode, node *corev1.Node) bool {
	return slices.ContainsFunc(c.OwnerReferences, func(r metav1.OwnerReference) bool {
		return r.Kind == "Node" && r.Name == node.Name && r.UID == node.UID
	})
}

// install publishes d: the Node's annotation and labels first, then the
// CSINode entry, as upstream's InstallCSIDriver. On an error part of it
// may be written; the caller undoes it with uninstall.
func (n *nodeInfo) install(ctx context.Context, d driverInfo) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.patchNode(ctx, func(node *corev1.Node, ids map[string]string, labels map[string]any) error {
		for k, v := range d.topology {
			cur, ok := node.Labels[k]
			if ok && cur != v {
				return fmt.Errorf("detected topology value collision: driver reported %q:%q but existing label is %q:%q", k, v, k, cur)
			}
			if !ok {
				labels[k] = v
			}
		}
		ids[d.name] = d.nodeID
		return nil
	}); err != nil {
		return fmt.Errorf("error updating Node object with CSI driver node info: %w", err)
	}
	entry := storagev1.CSINodeDriver{Name: d.name, NodeID: d.nodeID, TopologyKeys: slices.Sorted(maps.Keys(d.topology))}
	if d.maxVolumes > 0 {
		entry.Allocatable = &storagev1.VolumeNodeResources{Count: ptrInt32(min(d.maxVolumes, math.MaxInt32))}
	}
	if err := n.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		out := slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == d.name })
		return append(out, entry)
	}); err != nil {
		return fmt.Errorf("error updating CSINode object with CSI driver node info: %w", err)
	}
	return nil
}

func ptrInt32(v int64) *int32 { i := int32(v); return &i }

// uninstall removes the drivers names from the CSINode and the
// annotation, and the labels given (key -> the value the driver set) that
// still hold that value. It first calls proceed with the writes
// serialized; it does nothing when proceed says no (the driver was
// registered again meanwhile).
func (n *nodeInfo) uninstall(ctx context.Context, names []string, labels map[string]string, proceed func() bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !proceed() {
		return nil
	}
	return n.remove(ctx, names, labels)
}

// remove is uninstall with n.mu held; a label value "" removes the key
// whatever its value.
func (n *nodeInfo) remove(ctx context.Context, names []string, labels map[string]string) error {
	if err := n.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		return slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return slices.Contains(names, e.Name) })
	}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("error uninstalling CSI driver from CSINode object: %w", err)
	}
	if err := n.patchNode(ctx, func(node *corev1.Node, ids map[string]string, patch map[string]any) error {
		for _, name := range names {
			delete(ids, name)
		}
		for k, v := range labels {
			if cur, ok := node.Labels[k]; ok && (v == "" || cur == v) {
				patch[k] = nil
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("error removing CSI driver node info from Node object: %w", err)
	}
	return nil
}

// removeStale removes from the CSINode and the annotation every driver
// keep refuses, with the topology labels of their CSINode entries that no
// kept driver reports (keepKey).
func (n *nodeInfo) removeStale(ctx context.Context, keep func(name string) bool, keepKey func(key string) bool) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var stale []string
	labels := map[string]string{}
	c, err := n.client.StorageV1().CSINodes().Get(ctx, n.node, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get CSINode %s: %w", n.node, err)
	}
	if err == nil {
		for _, d := range c.Spec.Drivers {
			if keep(d.Name) {
				continue
			}
			stale = append(stale, d.Name)
			for _, k := range d.TopologyKeys {
				if !keepKey(k) {
					labels[k] = ""
				}
			}
		}
	}
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", n.node, err)
	}
	ids, err := nodeIDs(node)
	if err != nil {
		return nil, err
	}
	for name := range ids {
		if !keep(name) && !slices.Contains(stale, name) {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	slices.Sort(stale)
	return stale, n.remove(ctx, stale, labels)
}

// updateCSINode rewrites the CSINode's drivers with edit, retrying on
// conflicts; it writes nothing when edit changes nothing.
func (n *nodeInfo) updateCSINode(ctx context.Context, edit func([]storagev1.CSINodeDriver) []storagev1.CSINodeDriver) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.csiNode(ctx)
		if err != nil {
			return err
		}
		before := cur.Spec.Drivers
		after := edit(slices.Clone(before))
		if slices.EqualFunc(before, after, csiNodeDriverEqual) {
			return nil
		}
		cur.Spec.Drivers = after
		_, err = n.client.StorageV1().CSINodes().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func csiNodeDriverEqual(a, b storagev1.CSINodeDriver) bool {
	count := func(d storagev1.CSINodeDriver) int64 {
		if d.Allocatable == nil || d.Allocatable.Count == nil {
			return -1
		}
		return int64(*d.Allocatable.Count)
	}
	return a.Name == b.Name && a.NodeID == b.NodeID && slices.Equal(a.TopologyKeys, b.TopologyKeys) && count(a) == count(b)
}

// patchNode reads the Node, lets edit change the nodeid map and add label
// changes (key -> value, or nil to remove), and merge-patches only the
// annotation and those labels when anything changed.
func (n *nodeInfo) patchNode(ctx context.Context, edit func(node *corev1.Node, ids map[string]string, labels map[string]any) error) error {
	nodes := n.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ids, err := nodeIDs(node)
	if err != nil {
		return err
	}
	before := maps.Clone(ids)
	labels := map[string]any{}
	if err := edit(node, ids, labels); err != nil {
		return err
	}
	meta := map[string]any{}
	if !maps.Equal(before, ids) {
		if len(ids) == 0 {
			meta["annotations"] = map[string]any{NodeIDAnnotation: nil}
		} else {
			v, err := json.Marshal(ids)
			if err != nil {
				return err
			}
			meta["annotations"] = map[string]any{NodeIDAnnotation: string(v)}
		}
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(meta) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = nodes.Patch(ctx, n.node, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// nodeIDs parses the Node's nodeid annotation.
func nodeIDs(node *corev1.Node) (map[string]string, error) {
	ids := map[string]string{}
	if v := node.Annotations[NodeIDAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &ids); err != nil {
			return nil, fmt.Errorf("failed to parse node's %q annotation value (%q) err=%w", NodeIDAnnotation, v, err)
		}
	}
	if ids == nil {
		ids = map[string]string{}
	}
	return ids, nil
}
