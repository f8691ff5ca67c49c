package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/hostops/hostopstest"
)

// registeredDrivers is what the node shows of its CSI drivers: the
// CSINode's entries and the Node's nodeid annotation, by driver name, and
// the Node's labels.
func registeredDrivers(cs kubernetes.Interface, node string) (csiNode map[string]storagev1.CSINodeDriver, ids, labels map[string]string, err error) {
	ctx := context.Background()
	c, err := cs.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	csiNode = map[string]storagev1.CSINodeDriver{}
	for _, d := range c.Spec.Drivers {
		csiNode[d.Name] = d
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	if !slices.ContainsFunc(c.OwnerReferences, func(r metav1.OwnerReference) bool { return r.Kind == "Node" && r.UID == n.UID }) {
		return nil, nil, nil, fmt.Errorf("CSINode owners %+v do not name the Node %s", c.OwnerReferences, n.UID)
	}
	ids = map[string]string{}
	if v := n.Annotations["csi.volume.kubernetes.io/nodeid"]; v != "" {
		if err := json.Unmarshal([]byte(v), &ids); err != nil {
			return nil, nil, nil, err
		}
	}
	return csiNode, ids, n.Labels, nil
}

// TestPluginRegistration: the node agent registers a CSI driver whose
// registration socket appears in <root>/plugins_registry (the built-in
// driver of `up`, and a second `volplane csi` in its own process, as
// node-driver-registrar would register it): the CSINode entry, the nodeid
// annotation and the topology label. An agent restart drops neither; the
// second driver's clean stop removes its socket and undoes its part,
// leaving the topology label the built-in driver also reports.
func TestPluginRegistration(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the built-in CSI driver needs root (its pool mounts a btrfs image)")
		}
		t.Skip("needs root: the built-in CSI driver mounts its pool")
	}
	const (
		node    = "e2e-node"
		second  = "reg.csi.volplane.io"
		topoKey = "topology.local.csi.volplane.io/node"
	)
	p := startUp(t)
	t.Cleanup(func() { p.Stop(); hostopstest.Teardown(t, p.DataDir) })
	cs := p.Client()
	has := func(want map[string]string) func() error {
		return func() error {
			c, ids, labels, err := registeredDrivers(cs, node)
			if err != nil {
				return err
			}
			var names []string
			for n := range c {
				names = append(names, n)
			}
			if len(c) != len(want) || len(ids) != len(want) {
				return fmt.Errorf("CSINode drivers %v, nodeid annotation %v; want %v", names, ids, want)
			}
			for name, nodeID := range want {
				if c[name].NodeID != nodeID || ids[name] != nodeID || !slices.Equal(c[name].TopologyKeys, []string{topoKey}) {
					return fmt.Errorf("CSINode entry %+v, nodeid annotation %v; want %s: %s", c[name], ids, name, nodeID)
				}
			}
			if labels[topoKey] != node {
				return fmt.Errorf("node labels %v lack %s=%s", labels, topoKey, node)
			}
			return nil
		}
	}
	eventually(t, time.Minute, has(map[string]string{builtinDriver: node}))

	base := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	drv := startDriver(t, base, second, node, p.pluginsRegistry(), "--max-volumes-per-node", "9")
	eventually(t, time.Minute, has(map[string]string{builtinDriver: node, second: node}))
	c, _, _, err := registeredDrivers(cs, node)
	if err != nil {
		t.Fatal(err)
	}
	if a := c[second].Allocatable; a == nil || a.Count == nil || *a.Count != 9 {
		t.Errorf("allocatable %+v, want count 9", a)
	}

	// The agent restarts (up's built-in driver with it); the second
	// driver's socket still answers: it is registered again in place, never
	// dropped on the way.
	p.Restart()
	p.WaitReady()
	eventually(t, time.Minute, func() error {
		if !slices.ContainsFunc(strings.Split(p.Output(), "\n"), func(l string) bool {
			return strings.Contains(l, `msg="CSI driver registered"`) && strings.Contains(l, "name="+second+" ")
		}) {
			return errors.New("the restarted agent has not registered the second driver yet")
		}
		return has(map[string]string{builtinDriver: node, second: node})()
	})
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.Contains(l, second) && (strings.Contains(l, "DeRegisterPlugin") || strings.Contains(l, "removed CSI drivers")) {
			t.Errorf("the restarted agent dropped the live driver: %s", l)
		}
	}

	drv.Stop()
	eventually(t, time.Minute, has(map[string]string{builtinDriver: node}))
}
