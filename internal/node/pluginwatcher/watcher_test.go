package pluginwatcher

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	regapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const topoKey = "topology.example.com/node"

// registered checks that name is registered everywhere with nodeID.
func (e *testEnv) registered(t *testing.T, name, nodeID string) storagev1.CSINodeDriver {
	t.Helper()
	d, err := e.drivers.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if want := "unix://" + filepath.Join(e.drvDir, name+".sock"); d.Endpoint != want {
		t.Errorf("registry endpoint %q, want %q", d.Endpoint, want)
	}
	ids, err := nodeIDs(e.node(t))
	if err != nil {
		t.Fatal(err)
	}
	if ids[name] != nodeID {
		t.Errorf("nodeid annotation %v, want %s: %s", ids, name, nodeID)
	}
	for _, c := range e.csiNode(t).Spec.Drivers {
		if c.Name == name {
			if c.NodeID != nodeID {
				t.Errorf("CSINode nodeID %q, want %q", c.NodeID, nodeID)
			}
			return c
		}
	}
	t.Fatalf("%s not in the CSINode: %+v", name, e.csiNode(t).Spec.Drivers)
	return storagev1.CSINodeDriver{}
}

// goneNow reports whether name is out of the registry, the annotation
// and the CSINode.
func (e *testEnv) goneNow(t *testing.T, name string) bool {
	t.Helper()
	_, err := e.drivers.Get(name)
	ids, _ := nodeIDs(e.node(t))
	c, _ := e.client.StorageV1().CSINodes().Get(context.Background(), testNode, metav1.GetOptions{})
	return err != nil && ids[name] == "" &&
		(c == nil || !slices.ContainsFunc(c.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == name }))
}

// gone checks that name is registered nowhere.
func (e *testEnv) gone(t *testing.T, name string) {
	t.Helper()
	if _, err := e.drivers.Get(name); err == nil {
		t.Errorf("%s still in the registry", name)
	}
	if ids, _ := nodeIDs(e.node(t)); ids[name] != "" {
		t.Errorf("%s still in the nodeid annotation: %v", name, ids)
	}
	if c, err := e.client.StorageV1().CSINodes().Get(context.Background(), testNode, metav1.GetOptions{}); err == nil {
		for _, d := range c.Spec.Drivers {
			if d.Name == name {
				t.Errorf("%s still in the CSINode", name)
			}
		}
	}
}

func TestRegisterThenRemove(t *testing.T) {
	e := newEnv(t)
	e.run(t)
	// The CSINode exists, empty and owned by the Node, before any driver.
	eventually(t, "the CSINode", func() bool {
		_, err := e.client.StorageV1().CSINodes().Get(context.Background(), testNode, metav1.GetOptions{})
		return err == nil
	})
	c := e.csiNode(t)
	if len(c.Spec.Drivers) != 0 {
		t.Fatalf("new CSINode has drivers %+v", c.Spec.Drivers)
	}
	if len(c.OwnerReferences) != 1 || c.OwnerReferences[0].Kind != "Node" || c.OwnerReferences[0].UID != testNodeUID {
		t.Fatalf("CSINode owners %+v, want the Node", c.OwnerReferences)
	}
	if fi, err := os.Stat(e.dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("registration dir: %v %v", fi, err)
	}

	r1 := e.driver(t, "one.example.com", "n-1", 7, map[string]string{topoKey: "a", "topology.example.com/zone": "z"})
	r2 := e.driver(t, "two.example.com", "n-2", 0, map[string]string{topoKey: "a"})
	eventually(t, "both registered", func() bool { return len(e.drivers.Names()) == 2 && r1.last() != nil && r2.last() != nil })
	for _, r := range []*fakeRegistrar{r1, r2} {
		if s := r.last(); s == nil || !s.PluginRegistered {
			t.Fatalf("%s told %+v, want plugin_registered", r.info.Name, s)
		}
	}
	d := e.registered(t, "one.example.com", "n-1")
	if !slices.Equal(d.TopologyKeys, []string{topoKey, "topology.example.com/zone"}) {
		t.Errorf("topology keys %v, not sorted keys", d.TopologyKeys)
	}
	if d.Allocatable == nil || d.Allocatable.Count == nil || *d.Allocatable.Count != 7 {
		t.Errorf("allocatable %+v, want count 7", d.Allocatable)
	}
	if d := e.registered(t, "two.example.com", "n-2"); d.Allocatable != nil {
		t.Errorf("a driver without a limit has allocatable %+v", d.Allocatable)
	}
	want := map[string]string{"keep": "me", topoKey: "a", "topology.example.com/zone": "z"}
	if got := e.node(t).Labels; !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}

	// One goes: its zone label goes, the key two still reports stays.
	r1.remove(t)
	eventually(t, "one unregistered", func() bool { return e.goneNow(t, "one.example.com") })
	e.gone(t, "one.example.com")
	e.registered(t, "two.example.com", "n-2")
	want = map[string]string{"keep": "me", topoKey: "a"}
	if got := e.node(t).Labels; !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}

	// A registrar killed leaves its socket: the rescan finds it dead.
	r2.die()
	eventually(t, "two unregistered", func() bool { return e.goneNow(t, "two.example.com") })
	e.gone(t, "two.example.com")
	if got := e.node(t); !maps.Equal(got.Labels, map[string]string{"keep": "me"}) || got.Annotations[NodeIDAnnotation] != "" {
		t.Errorf("node left with labels %v, annotations %v", got.Labels, got.Annotations)
	}
}

func TestRestartKeepsLiveDriversDropsGone(t *testing.T) {
	// What an earlier run left: live registered, gone's socket is not.
	ids, _ := json.Marshal(map[string]string{"live.example.com": "n-live", "gone.example.com": "n-gone"})
	csiNode := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: testNode, OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: testNode, UID: testNodeUID}}},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "live.example.com", NodeID: "n-live", TopologyKeys: []string{topoKey}},
			{Name: "gone.example.com", NodeID: "n-gone", TopologyKeys: []string{"gone.example.com/zone"}},
		}},
	}
	e := newEnv(t, csiNode)
	node := e.node(t)
	node.Annotations = map[string]string{NodeIDAnnotation: string(ids)}
	node.Labels[topoKey] = "a"
	node.Labels["gone.example.com/zone"] = "z"
	if _, err := e.client.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := e.driver(t, "live.example.com", "n-live", 0, map[string]string{topoKey: "a"})
	e.client.ClearActions()
	e.run(t)
	eventually(t, "gone dropped", func() bool {
		ids, _ := nodeIDs(e.node(t))
		return ids["gone.example.com"] == "" && len(e.csiNode(t).Spec.Drivers) == 1
	})
	e.gone(t, "gone.example.com")
	e.registered(t, "live.example.com", "n-live")
	if s := r.last(); s == nil || !s.PluginRegistered {
		t.Fatalf("live told %+v", s)
	}
	if got, want := e.node(t).Labels, map[string]string{"keep": "me", topoKey: "a"}; !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	// live was never taken out of the CSINode on the way.
	for _, a := range e.client.Actions() {
		if u, ok := a.(interface{ GetObject() any }); ok && a.GetVerb() == "update" && a.GetResource().Resource == "csinodes" {
			c := u.GetObject().(*storagev1.CSINode)
			if !slices.ContainsFunc(c.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == "live.example.com" }) {
				t.Errorf("an update dropped the live driver: %+v", c.Spec.Drivers)
			}
		}
	}
}

func TestCSINodeOfAnOlderNodeIsReplaced(t *testing.T) {
	old := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "csinode-old", OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: testNode, UID: "an-older-node"}}},
		Spec:       storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: "x.example.com", NodeID: "n"}}},
	}
	e := newEnv(t, old)
	c, err := e.w.info.ensureCSINode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Spec.Drivers) != 0 || c.OwnerReferences[0].UID != testNodeUID {
		t.Fatalf("CSINode %+v, want a new empty one owned by the Node", c)
	}
}

// TestRefused: a registration that fails tells the registrar why and
// leaves nothing behind.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// edit changes the driver's GetInfo answer.
		edit     func(e *testEnv, i *regapi.PluginInfo)
		nodeID   string
		topology map[string]string
		wantErr  string
	}{
		{name: "device plugin", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.Type = regapi.DevicePlugin }, wantErr: "no handler registered for plugin type: DevicePlugin"},
		{name: "csi 0.3", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.SupportedVersions = []string{"0.3.0"} }, wantErr: "must be v1.x"},
		{name: "csi 2 only", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.SupportedVersions = []string{"2.0.0"} }, wantErr: "None of the versions specified"},
		{name: "no versions", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.SupportedVersions = nil }, wantErr: "empty list for supported versions"},
		{name: "bad name", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.Name = "Bad_Name" }, wantErr: "driver name \"Bad_Name\""},
		{name: "endpoint not a socket", edit: func(e *testEnv, i *regapi.PluginInfo) {
			i.Endpoint = filepath.Join(e.drvDir, "file")
			_ = os.WriteFile(i.Endpoint, nil, 0o600)
		}, wantErr: "is not a unix socket"},
		{name: "endpoint missing", edit: func(e *testEnv, i *regapi.PluginInfo) { i.Endpoint = filepath.Join(e.drvDir, "none.sock") }, wantErr: "no such file"},
		{name: "tcp endpoint", edit: func(_ *testEnv, i *regapi.PluginInfo) { i.Endpoint = "tcp://127.0.0.1:9" }, wantErr: "only unix sockets"},
		{name: "no node ID", nodeID: "-", wantErr: "driverNodeID must not be empty"},
		{name: "topology collision", topology: map[string]string{"keep": "other", topoKey: "a"}, wantErr: "detected topology value collision"},
		{name: "topology not a label", topology: map[string]string{"bad key!": "a"}, wantErr: "is not a label key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			nodeID := "n-1"
			if tc.nodeID == "-" {
				nodeID = ""
			}
			r := e.driver(t, "d.example.com", nodeID, 3, tc.topology)
			if tc.edit != nil {
				tc.edit(e, r.info)
			}
			_, err := e.w.register(context.Background(), r.path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			s := r.last()
			if s == nil || s.PluginRegistered || !strings.Contains(s.Error, tc.wantErr) {
				t.Fatalf("registrar told %+v, want a refusal quoting %q", s, tc.wantErr)
			}
			e.gone(t, "d.example.com")
			if got := e.node(t).Labels; !maps.Equal(got, map[string]string{"keep": "me"}) {
				t.Errorf("labels left: %v", got)
			}
		})
	}
}

func TestSameNameTwice(t *testing.T) {
	e := newEnv(t)
	r1 := e.driver(t, "d.example.com", "n-1", 0, nil)
	if _, err := e.w.register(context.Background(), r1.path, nil); err != nil {
		t.Fatal(err)
	}
	r2 := serveRegistrar(t, filepath.Join(e.dir, "again.sock"), r1.info)
	_, err := e.w.register(context.Background(), r2.path, nil)
	if err == nil || !strings.Contains(err.Error(), "Another driver with the same name is already registered") {
		t.Fatalf("second socket: %v", err)
	}
	if s := r2.last(); s == nil || s.PluginRegistered {
		t.Fatalf("second registrar told %+v", s)
	}
	e.registered(t, "d.example.com", "n-1")

	// A higher version takes the name over, as upstream; the old socket's
	// removal then leaves the new registration alone.
	info := &regapi.PluginInfo{Type: r1.info.Type, Name: r1.info.Name, Endpoint: r1.info.Endpoint, SupportedVersions: []string{"1.0.0", "1.5.0"}}
	r3 := serveRegistrar(t, filepath.Join(e.dir, "newer.sock"), info)
	if _, err := e.w.register(context.Background(), r3.path, nil); err != nil {
		t.Fatalf("newer version: %v", err)
	}
	if d, _ := e.drivers.Get("d.example.com"); !slices.Equal(d.Versions, info.SupportedVersions) {
		t.Fatalf("registry has %+v, want the newer registration", d)
	}
	e.w.unregister(context.Background(), &registration{path: r1.path, name: "d.example.com"})
	e.registered(t, "d.example.com", "n-1")
}
