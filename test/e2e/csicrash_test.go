package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"volplane/internal/csi/csitest"
	"volplane/internal/csi/registrar"
	"volplane/internal/hostops/hostopstest"
)

// crashRig is a `volplane server`, a `volplane node` and a `volplane csi`
// driver in its own process, with a csitest.Proxy in front of the driver:
// the server's in-process provisioner and attacher
// (--csi-controller NAME=unix://<proxy>) and the node agent (the proxy
// registered through plugins_registry, as node-driver-registrar would)
// reach the driver only through the proxy, which can hold one answer
// while the test kills the caller with SIGKILL.
type crashRig struct {
	server, node *Process
	proxy        *csitest.Proxy
	cs           kubernetes.Interface
	// driverSock is the driver's own socket, nodeDir the agent's data
	// dir, pool the driver's pool.
	driverSock, nodeDir, pool string
}

const (
	crashDriver = "crash.csi.volplane.io"
	crashNode   = "crash-node"
	crashClass  = "crash"
	crashClaim  = "crash"
)

func startCrashRig(t *testing.T) *crashRig {
	t.Helper()
	r := &crashRig{}
	// Short dirs: the sockets under them must fit a unix socket path.
	base := upDataDir(t)
	t.Cleanup(func() { hostopstest.Teardown(t, base) })
	r.driverSock, r.pool = driverSock(base), driverPool(base)
	proxySock := filepath.Join(base, "proxy.sock")

	serverDir := filepath.Join(base, "server")
	listen := freeAddr(t)
	r.server = startProcess(t, serverDir, listen, "server", "--data-dir", serverDir, "--listen", listen,
		"--csi-controller", crashDriver+"=unix://"+proxySock)
	r.server.WaitReady()
	bootstrap := filepath.Join(serverDir, "bootstrap-kubeconfig")
	eventually(t, time.Minute, func() error { _, err := os.Stat(bootstrap); return err })

	r.nodeDir = filepath.Join(base, "node")
	t.Cleanup(func() { cleanupNode(t, r.nodeDir) })
	root := filepath.Join(r.nodeDir, "kubelet")
	r.node = startProcess(t, r.nodeDir, "", "node", "--kubeconfig", bootstrap, "--root-dir", root,
		"--node-name", crashNode, "--kubelet-port", freePort(t))
	r.server.WaitPodsAccepted(t)

	startDriver(t, base, crashDriver, crashNode, "")
	r.proxy = csitest.ServeProxy(t, proxySock, "unix://"+r.driverSock)
	reg, err := registrar.Listen(registrar.Config{Driver: crashDriver, Endpoint: r.proxy.Endpoint,
		Dir: r.node.pluginsRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); reg.Close() })
	go func() { _ = reg.Serve(ctx) }()

	r.cs = r.server.Client()
	waitCSINodeDriver(t, r.cs, crashNode, crashDriver)
	return r
}

// kill9AndRestart kills p with SIGKILL, as a crash would, and starts it again with
// the same arguments.
func kill9AndRestart(t *testing.T, p *Process) {
	t.Helper()
	p.Signal(syscall.SIGKILL)
	p.start()
}

// TestCSICrashRestart kills, with SIGKILL, each caller of a real driver
// in the window between the driver's work and the caller's record of it,
// and checks the restarted caller neither loses nor repeats that work:
//   - the provisioner (in `server`) after CreateVolume answered, before
//     the PV is written: one backend volume, one PV, the claim Bound;
//   - the attacher (in `server`) after ControllerPublish answered, before
//     the VolumeAttachment's status: one VolumeAttachment, attached, one
//     publication, the pod Running;
//   - the node agent after NodeStage answered, before NodePublish: one
//     staging mount, one publish mount, the pod Running with the data;
//   - the node agent again after NodeStage, and while it is down the pod
//     is force-deleted and its claim deleted: the driver refuses
//     DeleteVolume of the volume still staged (VolumeFailedDelete on the
//     PV), and once the agent is back and has unstaged it, the PV and the
//     backend volume go, and no mount is left that was not there before.
func TestCSICrashRestart(t *testing.T) {
	hostopstest.RequireRoot(t)
	r := startCrashRig(t)
	cs, ctx := r.cs, context.Background()
	volumes := driverVolumes(t, r.driverSock)
	mountsBefore := append(hostopstest.MountsUnder(t, r.nodeDir), hostopstest.MountsUnder(t, r.pool)...)

	// 1. The provisioner dies with CreateVolume done and no PV written.
	held := r.proxy.Hold("CreateVolume")
	r.server.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+crashDriver+`}
spec: {attachRequired: true}
---`+immediateClassYAML(crashClass, crashDriver)+"---"+claimYAML(crashClaim, crashClass, "32Mi"))
	waitHeld(t, held, "CreateVolume", r.server)
	if v := volumes(); len(v) != 1 {
		t.Fatalf("driver volumes after the held CreateVolume: %v, want one", v)
	}
	kill9AndRestart(t, r.server)
	r.server.WaitReady()
	pv := waitBoundPV(t, cs, crashClaim, nil)
	handle := pv.Spec.CSI.VolumeHandle
	if v := volumes(); len(v) != 1 || !mapHas(v, handle) {
		t.Fatalf("driver volumes after the restart: %v, want only %s", v, handle)
	}
	if dirs := poolVolumes(t, r.pool); !slices.Equal(dirs, []string{handle}) {
		t.Fatalf("volume directories in the pool after the restart: %v, want only %s", dirs, handle)
	}
	if pvs := pvsOfDriver(t, cs); len(pvs) != 1 {
		t.Fatalf("PVs of %s: %v, want one", crashDriver, pvs)
	}
	if n := r.proxy.Calls("CreateVolume"); n < 2 {
		t.Fatalf("CreateVolume answered %d times: the restarted provisioner did not ask again", n)
	}

	// 2. The attacher dies with ControllerPublish done and no status
	// written.
	held = r.proxy.Hold("ControllerPublishVolume")
	crashPod(t, r, "crash-writer", "echo written-before-the-crashes > /data/file && exec sleep 3600")
	waitHeld(t, held, "ControllerPublishVolume", r.server)
	kill9AndRestart(t, r.server)
	r.server.WaitReady()
	waitPodRunning(t, r.server, "crash-writer")
	checkOneAttachment(t, r, pv, volumes)
	if n := r.proxy.Calls("ControllerPublishVolume"); n < 2 {
		t.Fatalf("ControllerPublishVolume answered %d times: the restarted attacher did not ask again", n)
	}
	eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(filepath.Join(backendDir(r.pool, handle), "file"))
		if err != nil || string(b) != "written-before-the-crashes\n" {
			return fmt.Errorf("backend file: %q %v", b, err)
		}
		return nil
	})
	r.server.MustKubectl(t, "delete", "pod", "crash-writer", "--timeout=2m")
	stage := csiStagePath(r.node.kubeletDir(), crashDriver, handle)
	eventually(t, 2*time.Minute, func() error {
		if n := hostopstest.MountCount(t, stage); n != 0 {
			return fmt.Errorf("%s mounted %d times after the only pod went", stage, n)
		}
		if v := volumes(); len(v[handle]) != 0 {
			return fmt.Errorf("volume still published to %v", v[handle])
		}
		return nil
	})

	// 3. The node agent dies with NodeStage done and NodePublish not
	// called.
	held = r.proxy.Hold("NodeStageVolume")
	crashPod(t, r, "crash-reader", "cat /data/file && exec sleep 3600")
	waitHeld(t, held, "NodeStageVolume", r.node)
	kill9AndRestart(t, r.node)
	reader := waitPodRunning(t, r.server, "crash-reader")
	eventually(t, time.Minute, func() error {
		out, err := r.server.Kubectl("logs", "crash-reader")
		if err != nil || out != "written-before-the-crashes\n" {
			return fmt.Errorf("reader's logs %q %v", out, err)
		}
		return nil
	})
	publish := csiPublishPath(r.node.kubeletDir(), reader.UID, pv.Name)
	for _, m := range []string{stage, publish} {
		if n := hostopstest.MountCount(t, m); n != 1 {
			t.Errorf("%s is mounted %d times, want once", m, n)
		}
	}
	checkOneAttachment(t, r, pv, volumes)

	// 4. The node agent dies again between NodeStage and NodePublish,
	// and while it is down the pod is force-deleted and its claim
	// deleted: the volume is still staged (and maybe published), so its
	// deletion is refused, visibly, naming the node, and retried: by the
	// provisioner while the VolumeAttachment stays (the node listed the
	// volume in use before it died, so the attach/detach controller waits
	// for it), or by the driver (FailedPrecondition: staged) when the
	// attachment went first. The restarted agent must unstage a volume no
	// pod of its own ever used.
	r.server.MustKubectl(t, "delete", "pod", "crash-reader", "--timeout=2m")
	eventually(t, 2*time.Minute, func() error {
		if n := hostopstest.MountCount(t, stage); n != 0 {
			return fmt.Errorf("%s mounted %d times after the reader went", stage, n)
		}
		return nil
	})
	held = r.proxy.Hold("NodeStageVolume")
	crashPod(t, r, "crash-orphan", "exec sleep 3600")
	waitHeld(t, held, "NodeStageVolume", r.node)
	r.node.Signal(syscall.SIGKILL)
	r.server.MustKubectl(t, "delete", "pod", "crash-orphan", "--grace-period=0", "--force")
	r.server.MustKubectl(t, "delete", "pvc", crashClaim, "--wait=false")
	eventually(t, 2*time.Minute, func() error {
		out, err := r.server.Kubectl("get", "events", "--field-selector", "involvedObject.name="+pv.Name,
			"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			refused := strings.Contains(line, "FailedPrecondition") || strings.Contains(line, "is still attached to node")
			if strings.HasPrefix(line, "VolumeFailedDelete: ") && refused && strings.Contains(line, crashNode) {
				return nil
			}
		}
		return fmt.Errorf("no VolumeFailedDelete naming %s on PV %s; events:\n%s", crashNode, pv.Name, out)
	})
	if v := volumes(); !mapHas(v, handle) {
		t.Fatalf("backend volume %s deleted while still published and staged: %v", handle, v)
	}
	if n := hostopstest.MountCount(t, stage); n != 1 {
		t.Fatalf("%s mounted %d times with the agent down, want once", stage, n)
	}
	// The deletion is retried with backoff; the limit is generous for
	// the backoff grown while the agent was down.
	r.node.start()
	eventually(t, 6*time.Minute, func() error {
		if err := pvGone(cs, pv.Name); err != nil {
			return err
		}
		if v := volumes(); len(v) != 0 {
			return fmt.Errorf("backend volumes left: %v", v)
		}
		if dirs := poolVolumes(t, r.pool); len(dirs) != 0 {
			return fmt.Errorf("volume directories left in the pool: %v", dirs)
		}
		l, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(l.Items) != 0 {
			return fmt.Errorf("%d VolumeAttachments left", len(l.Items))
		}
		return nil
	})
	t.Logf("driver calls through the proxy: CreateVolume %d, ControllerPublishVolume %d, NodeStageVolume %d, NodePublishVolume %d, DeleteVolume %d",
		r.proxy.Calls("CreateVolume"), r.proxy.Calls("ControllerPublishVolume"), r.proxy.Calls("NodeStageVolume"),
		r.proxy.Calls("NodePublishVolume"), r.proxy.Calls("DeleteVolume"))
	eventually(t, time.Minute, func() error {
		after := append(hostopstest.MountsUnder(t, r.nodeDir), hostopstest.MountsUnder(t, r.pool)...)
		if !slices.Equal(sortedCopy(after), sortedCopy(mountsBefore)) {
			return fmt.Errorf("mounts under the node and pool dirs: %v, before the test: %v", after, mountsBefore)
		}
		return nil
	})
}

// waitHeld waits until the proxy holds an answer of method, failing if
// the caller p exits first.
func waitHeld(t *testing.T, held <-chan struct{}, method string, p *Process) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(3 * time.Minute):
		t.Fatalf("no %s call reached the driver within 3m", method)
	case <-p.exited:
		t.Fatalf("volplane %s exited before %s was held", p.Args[0], method)
	}
}

// crashPod runs a pod of the claim on the crash node.
func crashPod(t *testing.T, r *crashRig, name, script string) {
	t.Helper()
	r.server.Apply(t, claimPodYAML(name, crashClaim, script))
}

// checkOneAttachment checks that exactly one VolumeAttachment exists, for
// pv on the crash node and attached, that the node's volumesAttached
// names the volume once, and that the driver has one publication of it.
func checkOneAttachment(t *testing.T, r *crashRig, pv *v1.PersistentVolume, volumes func() map[string][]string) {
	t.Helper()
	ctx := context.Background()
	handle := pv.Spec.CSI.VolumeHandle
	eventually(t, time.Minute, func() error {
		l, err := r.cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(l.Items) != 1 {
			return fmt.Errorf("%d VolumeAttachments, want one", len(l.Items))
		}
		if err := attachedVA(&l.Items[0], crashDriver, crashNode, pv.Name); err != nil {
			return err
		}
		n, err := r.cs.CoreV1().Nodes().Get(ctx, crashNode, metav1.GetOptions{})
		if err != nil {
			return err
		}
		unique := csiUniqueName(crashDriver, handle)
		if got := countFunc(n.Status.VolumesAttached, func(a v1.AttachedVolume) bool { return a.Name == unique }); got != 1 {
			return fmt.Errorf("node's volumesAttached %v name %s %d times, want once", n.Status.VolumesAttached, unique, got)
		}
		return nil
	})
	if v := volumes(); !slices.Equal(v[handle], []string{crashNode}) {
		t.Fatalf("driver publications of %s: %v, want only %s", handle, v[handle], crashNode)
	}
}

// pvsOfDriver names the PVs of the crash driver.
func pvsOfDriver(t *testing.T, cs kubernetes.Interface) []string {
	t.Helper()
	l, err := cs.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, pv := range l.Items {
		if pv.Spec.CSI != nil && pv.Spec.CSI.Driver == crashDriver {
			out = append(out, pv.Name)
		}
	}
	return out
}

func countFunc[T any](s []T, f func(T) bool) int {
	n := 0
	for _, e := range s {
		if f(e) {
			n++
		}
	}
	return n
}

func mapHas(m map[string][]string, k string) bool { _, ok := m[k]; return ok }

func sortedCopy(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }
