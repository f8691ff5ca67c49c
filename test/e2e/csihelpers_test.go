package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/hostops/hostopstest"
)

// What the CSI tests share: a driver in its own process, the paths and
// names upstream gives a CSI volume on a node, and waits for the objects
// of a volume's life.

// driverSock is the socket of the driver startDriver starts under base;
// a test names it to `up --csi-controller` before the driver starts.
func driverSock(base string) string { return filepath.Join(base, "csi.sock") }

// driverPool is the pool of the driver startDriver starts under base.
func driverPool(base string) string { return filepath.Join(base, "pool") }

// startDriver starts the built-in driver in its own process (`volplane
// csi`) under the name driver for node, listening on driverSock(base),
// with a 1Gi pool at driverPool(base), registered with the node agent
// through registry (a plugins_registry dir) unless registry is "", and
// extra flags after these.
func startDriver(t testing.TB, base, driver, node, registry string, extra ...string) *Process {
	t.Helper()
	args := []string{"csi", "--driver-name", driver, "--endpoint", "unix://" + driverSock(base),
		"--pool", driverPool(base), "--pool-size", "1Gi", "--node-id", node}
	if registry != "" {
		args = append(args, "--registration-dir", registry)
	}
	return startProcess(t, base, "", append(args, extra...)...)
}

// startUpForDriver starts `volplane up` and makes a dir beside it for a
// driver the test starts in its own process (startDriver); with
// controller set, up's controller side serves the driver of that name on
// driverSock(base) (--csi-controller). Mounts left under either dir are
// undone at the end.
func startUpForDriver(t testing.TB, controller string) (p *Process, base string) {
	t.Helper()
	base = t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	var args []string
	if controller != "" {
		args = append(args, "--csi-controller", controller+"=unix://"+driverSock(base))
	}
	p = startUp(t, args...)
	t.Cleanup(func() { p.Stop(); hostopstest.Teardown(t, p.DataDir) })
	return p, base
}

// kubeletDir is the root dir of the node agent in p (`up` or `node`).
func (p *Process) kubeletDir() string { return filepath.Join(p.DataDir, "kubelet") }

// pluginsRegistry is where the node agent in p watches for drivers'
// registration sockets.
func (p *Process) pluginsRegistry() string { return filepath.Join(p.kubeletDir(), "plugins_registry") }

// csiStagePath is upstream's staging path (globalmount) of the volume
// handle of driver, under the node agent's root dir kubelet.
func csiStagePath(kubelet, driver, handle string) string {
	return filepath.Join(kubelet, "plugins", "kubernetes.io", "csi", driver, sha256hex(handle), "globalmount")
}

// csiPublishPath is upstream's publish path of a pod's CSI volume (the
// PV's name, or an inline volume's name) under kubelet.
func csiPublishPath(kubelet string, pod types.UID, volume string) string {
	return filepath.Join(kubelet, "pods", string(pod), "volumes", "kubernetes.io~csi", volume, "mount")
}

// backendDir is a directory volume's data in a driver's pool.
func backendDir(pool, handle string) string { return filepath.Join(pool, "data", "volumes", handle) }

// vaName is upstream's name of the VolumeAttachment of handle on node.
func vaName(handle, driver, node string) string { return "csi-" + sha256hex(handle+driver+node) }

// csiUniqueName is how a Node's volumesAttached names a CSI volume.
func csiUniqueName(driver, handle string) v1.UniqueVolumeName {
	return v1.UniqueVolumeName("kubernetes.io/csi/" + driver + "^" + handle)
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// poolVolumes lists the directory volumes in a driver's pool, whether or
// not the driver has a record of them.
func poolVolumes(t testing.TB, pool string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(pool, "data", "volumes"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// driverVolumes returns a function listing the volumes the driver on
// sock holds (asked on its own socket), each with the node IDs it is
// published to, once the driver answers.
func driverVolumes(t testing.TB, sock string) func() map[string][]string {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctl := csi.NewControllerClient(conn)
	list := func() (map[string][]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := ctl.ListVolumes(ctx, &csi.ListVolumesRequest{})
		if err != nil {
			return nil, err
		}
		out := map[string][]string{}
		for _, e := range resp.GetEntries() {
			out[e.GetVolume().GetVolumeId()] = e.GetStatus().GetPublishedNodeIds()
		}
		return out, nil
	}
	eventually(t, time.Minute, func() error { _, err := list(); return err })
	return func() map[string][]string {
		t.Helper()
		s, err := list()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// waitCSINodeDriver waits until node's CSINode lists driver with node as
// its node ID: the driver registered with the node agent.
func waitCSINodeDriver(t testing.TB, cs kubernetes.Interface, node, driver string) {
	t.Helper()
	eventually(t, 2*time.Minute, func() error {
		n, err := cs.StorageV1().CSINodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == driver && d.NodeID == node }) {
			return fmt.Errorf("CSINode drivers %+v lack %s", n.Spec.Drivers, driver)
		}
		return nil
	})
}

// immediateClassYAML is a StorageClass of driver that provisions at once
// and deletes the volume with its claim.
func immediateClassYAML(class, driver string) string {
	return fmt.Sprintf(`
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %s}
provisioner: %s
volumeBindingMode: Immediate
reclaimPolicy: Delete
`, class, driver)
}

// claimYAML is a ReadWriteOnce claim in default of size, of class or,
// with class "", of the default class.
func claimYAML(claim, class, size string) string {
	y := fmt.Sprintf(`
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: %s}}
`, claim, size)
	if class != "" {
		y += "  storageClassName: " + class + "\n"
	}
	return y
}

// waitBoundPV waits until claim (in default) is Bound and returns its
// PV; check, unless nil, must accept the bound claim too.
func waitBoundPV(t testing.TB, cs kubernetes.Interface, claim string, check func(*v1.PersistentVolumeClaim) error) *v1.PersistentVolume {
	t.Helper()
	ctx := context.Background()
	var pv *v1.PersistentVolume
	eventually(t, 3*time.Minute, func() error {
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c.Status.Phase != v1.ClaimBound {
			return fmt.Errorf("claim is %s", c.Status.Phase)
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		pv, err = cs.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
		return err
	})
	return pv
}

// pvGone is nil once the PV named is deleted.
func pvGone(cs kubernetes.Interface, name string) error {
	if _, err := cs.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("PV %s still there: %v", name, err)
	}
	return nil
}

// attachedVA is nil when va is attached, by driver, to node, for the PV
// named pv.
func attachedVA(va *storagev1.VolumeAttachment, driver, node, pv string) error {
	if !va.Status.Attached || va.Spec.Attacher != driver || va.Spec.NodeName != node ||
		va.Spec.Source.PersistentVolumeName == nil || *va.Spec.Source.PersistentVolumeName != pv {
		return fmt.Errorf("VolumeAttachment %s: spec %+v status %+v", va.Name, va.Spec, va.Status)
	}
	return nil
}

// claimPodYAML is a pod in default running script with the claim
// mounted at /data.
func claimPodYAML(name, claim, script string) string {
	return podYAML(name, script, "data", "persistentVolumeClaim: {claimName: "+claim+"}")
}

// podYAML is a pod in default running script (sh -c in busybox) with one
// volume, mounted at /<volume>, whose source is the YAML line source.
func podYAML(name, script, volume, source string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, %q]
    volumeMounts: [{name: %s, mountPath: /%s}]
  volumes:
  - name: %s
    %s
`, name, script, volume, volume, volume, source)
}

// eventsOf is the events of the object named, a "reason: message" line
// each, for an error message.
func (p *Process) eventsOf(name string) string {
	out, _ := p.Kubectl("get", "events", "--field-selector", "involvedObject.name="+name,
		"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
	return out
}

// waitPodRunning waits until the pod named (in default) runs, through
// the API of p, and returns it.
func waitPodRunning(t testing.TB, p *Process, name string) *v1.Pod {
	t.Helper()
	cs := p.Client()
	var pod *v1.Pod
	eventually(t, 3*time.Minute, func() error {
		var err error
		pod, err = cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.Status.Phase != v1.PodRunning {
			return fmt.Errorf("pod %s is %s; events:\n%s", name, pod.Status.Phase, p.eventsOf(name))
		}
		return nil
	})
	return pod
}
