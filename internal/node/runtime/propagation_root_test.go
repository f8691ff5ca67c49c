package runtime

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

func TestMountPropagation(t *testing.T) {
	e := newTestEnv(t)
	host := hostops.New()
	mkdir := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// As the agent does with its root directory (twice is fine), which
	// also holds the runtime's state directory, as in a node's layout;
	// then the runtime starts again, as after the agent's restart.
	kubelet := e.dir
	for range 2 {
		if err := host.MakeMountPoint(e.ctx, kubelet, hostops.PropagationShared); err != nil {
			t.Fatal(err)
		}
	}
	e.rt = e.open()
	sb, sbCfg := e.sandbox("prop")
	mountTmpfs := func(dir string) {
		t.Helper()
		mkdir(dir)
		if err := host.Mount(e.ctx, "tmpfs", dir, "tmpfs", nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// HostToContainer: a mount made on the host after the container
	// started shows inside; None: it does not.
	slave, private := mkdir(filepath.Join(kubelet, "slave")), mkdir(filepath.Join(kubelet, "private"))
	const check = "while ! test -e /v/go; do sleep 0.05; done; if test -e /v/late/marker; then echo seen; else echo unseen; fi"
	h2c := containerConfig("h2c", "sh", "-c", check)
	h2c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: slave, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}
	none := containerConfig("none", "sh", "-c", check)
	none.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: private}}
	h2cID, noneID := e.run(sb, sbCfg, h2c), e.run(sb, sbCfg, none)
	for _, d := range []string{slave, private} {
		mountTmpfs(filepath.Join(d, "late"))
		if err := os.WriteFile(filepath.Join(d, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitLog(t, e.rt, h2cID, "stdout F seen")
	waitLog(t, e.rt, noneID, "stdout F unseen")

	// Bidirectional (privileged): a mount made in the container reaches
	// the host.
	shared := mkdir(filepath.Join(kubelet, "shared"))
	bidi := containerConfig("bidi", "sh", "-c", "mkdir -p /v/inner && mount -t tmpfs tmpfs /v/inner && touch /v/inner/from-container && sleep 1000")
	bidi.Linux.SecurityContext.Privileged = true
	bidi.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: shared, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
	bidiID := e.run(sb, sbCfg, bidi)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(shared, "inner", "from-container")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(sbCfg.LogDirectory, "bidi", "0.log"))
			t.Fatalf("the container's mount never reached the host (log %q)", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if mp, err := host.IsMountPoint(filepath.Join(shared, "inner")); err != nil || !mp {
		t.Errorf("%s/inner is not a mount point on the host: %v", shared, err)
	}
	// Nothing of the container's own mounts leaked onto the host, so
	// its bundle can go.
	if err := e.rt.RemoveContainer(e.ctx, bidiID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{h2cID, noneID} {
		if err := e.rt.RemoveContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if m := hostopstest.MountsUnder(t, e.rt.containerDir()); len(m) != 0 {
		t.Errorf("mounts under the bundles: %v", m)
	}
}
