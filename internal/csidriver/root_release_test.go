package csidriver_test

import (
	"context"
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
}
