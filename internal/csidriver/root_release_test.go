package csidriver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"volplane/internal/hostops"
)

// Release unmounts an image pool only once no volume is staged: while one
// is, the pool (and the volume's mounts on it) stay.
func TestReleaseKeepsAPoolInUse(t *testing.T) {
	r := newRig(t, "ext4")
	ctx := context.Background()
	mounted := func() bool {
		t.Helper()
		ok, err := hostops.New().IsMountPoint(r.d.Pool().DataDir())
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !mounted() {
		t.Fatal("the ext4 pool is not a mounted btrfs image")
	}
	id := r.create(t, "kept", 10<<20, nil, false, nil)
	r.attach(t, id, false)
	if err := r.d.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !mounted() {
		t.Fatal("Release unmounted the pool under a staged volume")
	}
	r.detach(t, id, false)
	if err := r.d.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if mounted() {
		t.Fatal("Release left the pool mounted with no volume staged")
	}
	// The records are in their files: the volume's, with nothing left
	// in a journal.
	meta := r.d.Pool().MetaDir()
	if _, err := os.Stat(filepath.Join(meta, "volumes", id+".json")); err != nil {
		t.Fatalf("the volume's record file after Release: %v", err)
	}
	journals, err := filepath.Glob(filepath.Join(meta, "journal-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range journals {
		if fi, err := os.Stat(j); err != nil || fi.Size() != 0 {
			t.Fatalf("journal %s after Release: %v, %v; want it empty", j, fi, err)
		}
	}
}

// Another mount of the pool's filesystem (a node's size-limited emptyDir
// is a pool subvolume bind-mounted into its pod) keeps the pool mounted.
func TestReleaseKeepsAPoolOtherMountsUse(t *testing.T) {
	r := newRig(t, "ext4")
	ctx := context.Background()
	h := hostops.New()
	sub := filepath.Join(r.d.Pool().DataDir(), "emptydir-like")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if err := h.BindMount(ctx, sub, target, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Unmount(context.Background(), target) })
	if err := r.d.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.IsMountPoint(r.d.Pool().DataDir()); !ok {
		t.Fatal("Release unmounted the pool while another mount uses its filesystem")
	}
	if err := h.Unmount(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.IsMountPoint(r.d.Pool().DataDir()); ok {
		t.Fatal("Release left the pool mounted once nothing used it")
	}
}
