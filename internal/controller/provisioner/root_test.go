package provisioner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"volplane/internal/csidriver"
	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops/hostopstest"
)

// realDriver serves the built-in driver, named driver, on a btrfs pool in
// a loop file, until the test ends.
func realDriver(t *testing.T) (*csidriver.Driver, string) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("CI") == "true" {
		t.Fatal("the built-in driver needs root")
	}
	mnt := hostopstest.LoopFS(t, "btrfs", 4<<30)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := csidriver.New(ctx, csidriver.Config{Name: driver, NodeID: "n1", Pool: pool.Config{Dir: filepath.Join(mnt, "pool")}})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "unix://" + filepath.Join(t.TempDir(), "csi.sock")
	l, err := csidriver.Listen(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeOn(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return d, endpoint
}

// TestRealDriverCrashBetweenCreateVolumeAndPV is the crash test against
// the built-in driver: after a crash between CreateVolume and the PV
// write, and a restart, the pool holds one volume and the API one PV;
// after the claim is released, DeleteVolume empties the pool.
func TestRealDriverCrashBetweenCreateVolumeAndPV(t *testing.T) {
	d, endpoint := realDriver(t)
	h := newHarnessOn(t, endpoint, class("fast", storagev1.VolumeBindingImmediate, map[string]string{"type": "dir"}),
		claim("data", "fast", nil))
	ctx, crash := context.WithCancel(context.Background())
	h.cs.PrependReactor("create", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		crash()
		return true, nil, errors.New("connection reset")
	})
	if err := h.c.syncClaim(ctx, "default/data"); err == nil {
		t.Fatal("no error from the crashed sync")
	}
	h.cs.ReactionChain = h.cs.ReactionChain[1:]
	h.start(Config{})
	if err := h.c.syncClaim(context.Background(), "default/data"); err != nil {
		t.Fatal(err)
	}
	vols := d.Store().ListVolumes()
	pvs, _ := h.cs.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
	if len(vols) != 1 || len(pvs.Items) != 1 || pvs.Items[0].Spec.CSI.VolumeHandle != vols[0].ID {
		t.Fatalf("%d pool volumes, %d PVs; want one each, the PV naming the volume", len(vols), len(pvs.Items))
	}
	if _, err := os.Stat(d.Pool().DirPath(vols[0].ID)); err != nil {
		t.Errorf("volume directory: %v", err)
	}

	// Released: the backend goes.
	pv := pvs.Items[0]
	pv.Status.Phase = "Released"
	h.cs.CoreV1().PersistentVolumes().UpdateStatus(context.Background(), &pv, metav1.UpdateOptions{})
	h.start(Config{})
	if err := h.c.syncVolume(context.Background(), pv.Name); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Store().ListVolumes()); n != 0 {
		t.Errorf("%d pool volumes after deletion", n)
	}
	if _, err := os.Stat(d.Pool().DirPath(vols[0].ID)); !os.IsNotExist(err) {
		t.Errorf("volume directory still there: %v", err)
	}
}
