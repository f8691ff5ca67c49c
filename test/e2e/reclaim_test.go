package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProvisionAndDelete: a claim of a kubernetes.io/host-path class is
// provisioned by volplane's in-process provisioner; deleting the claim
// deletes the backend directory, then the volume (reclaim policy Delete).
func TestProvisionAndDelete(t *testing.T) {
	root := t.TempDir()
	p := startUp(t, "--enable-hostpath-provisioner-dir", root)
	p.Apply(t, `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: dyn}
spec:
  storageClassName: hostpath
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`)
	var pv string
	eventually(t, time.Minute, func() error {
		out, err := p.Kubectl("get", "pvc", "dyn", "-o", "jsonpath={.status.phase} {.spec.volumeName}")
		if err != nil {
			return err
		}
		phase, name, _ := strings.Cut(out, " ")
		if phase != "Bound" || name == "" {
			return fmt.Errorf("claim %q", out)
		}
		pv = name
		return nil
	})
	if out := p.MustKubectl(t, "get", "pv", pv, "-o", "jsonpath={.metadata.annotations.pv\\.kubernetes\\.io/provisioned-by} {.spec.persistentVolumeReclaimPolicy} {.spec.hostPath.path}"); out != "kubernetes.io/host-path Delete "+filepath.Join(root, pv) {
		t.Fatalf("provisioned volume: %q", out)
	}
	if _, err := os.Stat(filepath.Join(root, pv)); err != nil {
		t.Fatalf("backend directory: %v", err)
	}
	contains(t, p.MustKubectl(t, "describe", "pvc", "dyn"), "ProvisioningSucceeded", "Successfully provisioned volume "+pv)

	p.MustKubectl(t, "delete", "pvc", "dyn")
	eventually(t, time.Minute, func() error {
		if _, err := p.Kubectl("get", "pv", pv); err == nil {
			return fmt.Errorf("volume %s still exists", pv)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(root, pv)); !os.IsNotExist(err) {
		t.Fatalf("backend directory after delete: %v", err)
	}
}
