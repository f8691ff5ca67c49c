package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/hostopstest"
)

// TestCSIInlineOnUp is a CSI inline (ephemeral) volume on `volplane up`,
// through kubectl: a pod with a volumes[].csi of the built-in driver
// writes a file; the volume is published (no VolumeAttachment, no
// staging) at upstream's path, a mount holding a volume of the driver's
// pool named by upstream's csi-<sha256(pod uid + volume name)> handle;
// deleting the pod unmounts it and leaves no volume in the pool. A pod
// with an inline volume of a driver whose CSIDriver lists only
// Persistent gets upstream's FailedMount event and no publication.
func TestCSIInlineOnUp(t *testing.T) {
	hostopstest.RequireRoot(t)
	const persistentOnly = "persistent-only.csi.volplane.io"
	p, base := startUpForDriver(t, "")
	startDriver(t, base, persistentOnly, "e2e-node", p.pluginsRegistry())
	p.WaitPodsAccepted(t)
	cs := p.Client()
	ctx := context.Background()

	d, err := cs.StorageV1().CSIDrivers().Get(ctx, builtinDriver, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Spec.VolumeLifecycleModes, storagev1.VolumeLifecycleEphemeral) {
		t.Fatalf("CSIDriver %s modes %v lack Ephemeral", builtinDriver, d.Spec.VolumeLifecycleModes)
	}
	p.Apply(t, `
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: `+persistentOnly+`}
spec: {attachRequired: false, podInfoOnMount: true, volumeLifecycleModes: [Persistent]}
`)
	// Both drivers registered with the node agent.
	for _, d := range []string{builtinDriver, persistentOnly} {
		waitCSINodeDriver(t, cs, "e2e-node", d)
	}

	pod := func(name, driver string) string {
		return podYAML(name, "echo inline > /scratch/file && exec sleep 3600", "scratch",
			"csi: {driver: "+driver+", volumeAttributes: {size: 16Mi}}")
	}

	t.Run("built-in driver", func(t *testing.T) {
		p.Apply(t, pod("inline-writer", builtinDriver))
		got := waitPodRunning(t, p, "inline-writer")
		handle := "csi-" + sha256hex(string(got.UID)+"scratch")
		backend := backendDir(filepath.Join(p.DataDir, "pool"), handle)
		publish := csiPublishPath(p.kubeletDir(), got.UID, "scratch")
		if !slices.Contains(hostopstest.MountsUnder(t, p.DataDir), publish) {
			t.Errorf("%s is not a mount point", publish)
		}
		eventually(t, time.Minute, func() error {
			b, err := os.ReadFile(filepath.Join(backend, "file"))
			if err != nil || string(b) != "inline\n" {
				return fmt.Errorf("file in the pool's volume %s: %q %v", handle, b, err)
			}
			return nil
		})
		vas, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil || len(vas.Items) != 0 {
			t.Errorf("VolumeAttachments for an inline volume: %d, %v", len(vas.Items), err)
		}
		for _, m := range hostopstest.MountsUnder(t, filepath.Join(p.kubeletDir(), "plugins")) {
			if strings.Contains(m, "globalmount") {
				t.Errorf("an inline volume was staged: %s", m)
			}
		}

		p.MustKubectl(t, "delete", "pod", "inline-writer", "--timeout=2m")
		eventually(t, 2*time.Minute, func() error {
			if slices.Contains(hostopstest.MountsUnder(t, p.DataDir), publish) {
				return fmt.Errorf("%s still mounted", publish)
			}
			if _, err := os.Stat(backend); !os.IsNotExist(err) {
				return fmt.Errorf("volume %s still in the pool: %v", handle, err)
			}
			return nil
		})
		if left := poolVolumes(t, filepath.Join(p.DataDir, "pool")); len(left) != 0 {
			t.Errorf("volumes left in the pool: %v", left)
		}
	})

	t.Run("driver without Ephemeral mode", func(t *testing.T) {
		p.Apply(t, pod("inline-refused", persistentOnly))
		want := `volume mode "Ephemeral" not supported by driver ` + persistentOnly + ` (only supports ["Persistent"])`
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("get", "events", "--field-selector", "involvedObject.name=inline-refused,reason=FailedMount",
				"-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
			if err != nil || !strings.Contains(out, want) || !strings.Contains(out, `MountVolume.SetUp failed for volume "scratch"`) {
				return fmt.Errorf("FailedMount events %q %v, want %q", out, err, want)
			}
			return nil
		})
		got, err := cs.CoreV1().Pods("default").Get(ctx, "inline-refused", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == v1.PodRunning {
			t.Error("pod runs without its volume")
		}
		if left := poolVolumes(t, driverPool(base)); len(left) != 0 {
			t.Errorf("volumes in the refusing driver's pool: %v", left)
		}
		p.MustKubectl(t, "delete", "pod", "inline-refused", "--timeout=2m")
		eventually(t, time.Minute, func() error {
			_, err := cs.CoreV1().Pods("default").Get(ctx, "inline-refused", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod still there: %v", err)
			}
			return nil
		})
	})
}
