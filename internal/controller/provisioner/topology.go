package provisioner

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"

	"volplane/internal/csi/client"
	"volplane/internal/csi/kube"
)

// requirements computes a CreateVolume's accessibility requirements, as
// upstream's external-provisioner does:
//
//	case                      requisite                          preferred
//	------------------------  ---------------------------------  -----------------------------
//	driver without topology   none                               none
//	selected node, strict     the node's segment                 the node's segment
//	selected node             every node's segment (same keys)   the node's first, then the rest
//	class allowedTopologies   every term's segments              the same, rotated by claim
//	otherwise                 every node's segment               the same, rotated by claim
func (c *Controller) requirements(claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass, node *v1.Node) (requisite, preferred []client.Topology, err error) {
	if !c.cfg.Capabilities.Topology {
		return nil, nil, nil
	}
	if node != nil {
		csiNode, _ := c.csiNodes.Get(node.Name)
		seg, ok := kube.NodeSegment(node, csiNode, c.cfg.Driver)
		if !ok {
			return nil, nil, fmt.Errorf("error generating accessibility requirements: node %s has no topology of driver %s in its CSINode and labels", node.Name, c.cfg.Driver)
		}
		if c.cfg.StrictTopology {
			return []client.Topology{seg}, []client.Topology{seg}, nil
		}
		all, err := c.nodeSegments(seg)
		if err != nil {
			return nil, nil, err
		}
		first := kube.SegmentKey(seg)
		preferred = []client.Topology{seg}
		i := slices.IndexFunc(all, func(t client.Topology) bool { return kube.SegmentKey(t) == first })
		for j := 1; j < len(all); j++ {
			preferred = append(preferred, all[(i+j)%len(all)])
		}
		return all, preferred, nil
	}
	if len(class.AllowedTopologies) > 0 {
		requisite = allowedSegments(class.AllowedTopologies)
	} else {
		if requisite, err = c.nodeSegments(nil); err != nil {
			return nil, nil, err
		}
	}
	if len(requisite) == 0 {
		return nil, nil, nil
	}
	h := fnv.New32a()
	h.Write([]byte(claim.Name))
	off := int(h.Sum32() % uint32(len(requisite)))
	preferred = append(slices.Clone(requisite[off:]), requisite[:off]...)
	return requisite, preferred, nil
}

// nodeSegments returns the distinct topology segments of the nodes that
// run the driver, sorted; with must set, only nodes whose driver has the
// same topology keys, and must itself among them.
func (c *Controller) nodeSegments(must client.Topology) ([]client.Topology, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	seen := map[string]client.Topology{}
	if must != nil {
		seen[kube.SegmentKey(must)] = must
	}
	for _, n := range nodes {
		csiNode, err := c.csiNodes.Get(n.Name)
		if err != nil {
			continue
		}
		seg, ok := kube.NodeSegment(n, csiNode, c.cfg.Driver)
		if !ok || len(seg) == 0 || (must != nil && !sameKeys(seg, must)) {
			continue
		}
		seen[kube.SegmentKey(seg)] = seg
	}
	var out []client.Topology
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[k])
	}
	return out, nil
}

func sameKeys(a, b client.Topology) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// allowedSegments expands a class's allowedTopologies: each term is the
// product of its expressions' values.
func allowedSegments(terms []v1.TopologySelectorTerm) []client.Topology {
	var out []client.Topology
	seen := map[string]bool{}
	for _, term := range terms {
		segs := []client.Topology{{}}
		for _, e := range term.MatchLabelExpressions {
			var next []client.Topology
			for _, s := range segs {
				for _, v := range e.Values {
					n := client.Topology{e.Key: v}
					for k, vv := range s {
						n[k] = vv
					}
					next = append(next, n)
				}
			}
			segs = next
		}
		for _, s := range segs {
			if k := kube.SegmentKey(s); len(s) > 0 && !seen[k] {
				seen[k] = true
				out = append(out, s)
			}
		}
	}
	return out
}
