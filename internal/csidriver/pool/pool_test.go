package pool_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []pool.Config{{}, {Dir: "relative"}, {Dir: "/abs", ImageSize: 1 << 20}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (&pool.Config{Dir: "/abs"}).Validate(); err != nil {
		t.Errorf("zero image size means the default: %v", err)
	}
}

// The mode follows what the pool's filesystem can enforce, and sticks.
func TestModeDetectionAndRestart(t *testing.T) {
	ctx := context.Background()
	host := hostops.New()
	for _, tc := range []struct {
		fstype string
		mode   pool.Mode
	}{{"btrfs", pool.ModeBtrfs}, {"ext4", pool.ModeBtrfsImage}, {"xfs", pool.ModeBtrfsImage}} {
		t.Run(tc.fstype, func(t *testing.T) {
			mnt := hostopstest.LoopFS(t, tc.fstype, 1<<30)
			cfg := pool.Config{Dir: filepath.Join(mnt, "pool"), ImageSize: 512 << 20}
			p, err := pool.Open(ctx, cfg, host)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Unmount(ctx) })
			if p.Mode() != tc.mode {
				t.Fatalf("mode %s on %s, want %s", p.Mode(), tc.fstype, tc.mode)
			}
			if err := p.CreateDir(ctx, "v", 4<<20, 0); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(p.DirPath("v"), "marker")
			if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			// A restart reuses the mode and, in image mode, the mount;
			// a larger size grows the image.
			cfg.ImageSize = 768 << 20
			p2, err := pool.Open(ctx, cfg, host)
			if err != nil {
				t.Fatal(err)
			}
			if p2.Mode() != tc.mode {
				t.Fatalf("mode changed on restart: %s", p2.Mode())
			}
			if _, err := os.Stat(marker); err != nil {
				t.Fatalf("data lost across a restart: %v", err)
			}
			if tc.mode == pool.ModeBtrfsImage {
				if st, _ := os.Stat(p2.ImagePath()); st.Size() != 768<<20 {
					t.Fatalf("image size %d after asking for 768 MiB", st.Size())
				}
				total, _, _ := p2.Space()
				if total < 700<<20 {
					t.Fatalf("filesystem of %d bytes after growing the image", total)
				}
			}
			if err := p2.DeleteDir(ctx, "v"); err != nil {
				t.Fatal(err)
			}
			if err := p2.Unmount(ctx); err != nil {
				t.Fatal(err)
			}
			if dev, err := host.LoopFind(p2.ImagePath()); err == nil && dev != "" {
				t.Fatalf("pool image still attached to %s after Unmount", dev)
			}
		})
	}
}

// Creates are atomic-or-absent and retries only re-apply the limit.
func TestCreatesAreIdempotent(t *testing.T) {
	ctx := context.Background()
	mnt := hostopstest.LoopFS(t, "btrfs", 1<<30)
	p, err := pool.Open(ctx, pool.Config{Dir: filepath.Join(mnt, "pool")}, hostops.New())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := p.CreateDir(ctx, "d", 8<<20, 0); err != nil {
			t.Fatalf("create #%d: %v", i+1, err)
		}
		if err := p.CreateBlock(ctx, "b", 8<<20); err != nil {
			t.Fatalf("create block #%d: %v", i+1, err)
		}
	}
	if _, limit, err := p.DirUsage(ctx, "d", 0); err != nil || limit != 8<<20 {
		t.Fatalf("limit %d, %v", limit, err)
	}
	if err := p.ResizeBlock(ctx, "b", 16<<20); err != nil {
		t.Fatal(err)
	}
	if size, _ := p.BlockSize("b"); size != 16<<20 {
		t.Fatalf("block size %d after resize", size)
	}
	if alloc, _ := p.BlockAllocated("b"); alloc > 1<<20 {
		t.Fatalf("a new block volume takes %d bytes: it must be sparse", alloc)
	}
	if err := p.SnapshotDir(ctx, "d", "s"); err != nil {
		t.Fatal(err)
	}
	if err := p.SnapshotDir(ctx, "d", "s"); err != nil {
		t.Fatalf("snapshot retry: %v", err)
	}
	for _, del := range []func() error{
		func() error { return p.DeleteDir(ctx, "d") }, func() error { return p.DeleteDir(ctx, "d") },
		func() error { return p.DeleteBlock(ctx, "b") }, func() error { return p.DeleteBlock(ctx, "b") },
		func() error { return p.DeleteDirSnapshot(ctx, "s") },
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
	}
	// A crash left a half-built entry: the next open removes it.
	leftover := filepath.Join(p.DataDir(), "blocks", ".x.img.tmp")
	os.WriteFile(leftover, nil, 0o600)
	if _, err := pool.Open(ctx, pool.Config{Dir: filepath.Join(mnt, "pool")}, hostops.New()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover of an interrupted create survives: %v", err)
	}
}
