package csidriver_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"volplane/internal/csidriver"
	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops/hostopstest"
)

// rig is the driver on a real pool: a loop-backed btrfs filesystem (the
// pool on btrfs) or ext4 (the pool becomes a btrfs image), with a scratch
// directory for staging and target paths.
type rig struct {
	d    *csidriver.Driver
	cfg  csidriver.Config
	dir  string
	node string
}

func newRig(t *testing.T, fstype string) *rig {
	t.Helper()
	mnt := hostopstest.LoopFS(t, fstype, 4<<30)
	r := &rig{node: "node-1"}
	r.cfg = csidriver.Config{NodeID: r.node, Pool: pool.Config{Dir: filepath.Join(mnt, "pool"), ImageSize: 2 << 30}}
	r.start(t)
	t.Cleanup(func() {
		if err := r.d.Pool().Unmount(context.Background()); err != nil {
			t.Errorf("unmount pool: %v", err)
		}
	})
	// Registered last, so it runs first: the volumes' mounts go before
	// the pool's.
	r.dir = t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, r.dir) })
	return r
}

// start opens (or reopens: a restart) the driver on the rig's pool.
func (r *rig) start(t *testing.T) {
	t.Helper()
	d, err := csidriver.New(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
}

func capability(block bool, mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode}}
	if block {
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	} else {
		c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}
	}
	return c
}

var snw = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER

func (r *rig) create(t *testing.T, name string, size int64, params map[string]string, block bool, src *csi.VolumeContentSource) string {
	t.Helper()
	resp, err := r.d.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: name,
		CapacityRange:       &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities:  []*csi.VolumeCapability{capability(block, snw)},
		Parameters:          params,
		VolumeContentSource: src})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.GetVolume().GetVolumeId()
}

// attach stages and publishes a volume and returns the staging and
// target paths.
func (r *rig) attach(t *testing.T, id string, block bool) (staging, target string) {
	t.Helper()
	ctx := context.Background()
	staging = filepath.Join(r.dir, id, "staging")
	target = filepath.Join(r.dir, id, "target")
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		VolumeCapability: capability(block, snw)}); err != nil {
		t.Fatalf("stage %s: %v", id, err)
	}
	if _, err := r.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: capability(block, snw)}); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	return staging, target
}

// detach unpublishes, unstages and deletes a volume.
func (r *rig) detach(t *testing.T, id string, deleteToo bool) {
	t.Helper()
	ctx := context.Background()
	staging := filepath.Join(r.dir, id, "staging")
	target := filepath.Join(r.dir, id, "target")
	if _, err := r.d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatalf("unpublish %s: %v", id, err)
	}
	if _, err := r.d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		t.Fatalf("unstage %s: %v", id, err)
	}
	if deleteToo {
		if _, err := r.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
}

// writeTree writes a few files of random content under dir.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	for i, size := range []int{0, 1, 4096, 100 << 10, 1 << 20} {
		sub := filepath.Join(dir, "d", string(rune('a'+i)))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(sub, "f"), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d/a/f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// treeDigest maps every path under dir to its type and content hash.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "lost+found" || filepath.Dir(rel) == "lost+found" {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link:" + l
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDigest(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
