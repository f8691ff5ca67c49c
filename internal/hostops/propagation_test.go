package hostops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mountutils "k8s.io/mount-utils"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

// propagationOf returns the optional fields of the visible mount at path,
// or nil and false when path is not a mount point.
func propagationOf(t *testing.T, path string) ([]string, bool) {
	t.Helper()
	infos, err := mountutils.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	found := false
	for _, mi := range infos {
		if mi.MountPoint == path {
			fields, found = mi.OptionalFields, true
		}
	}
	return fields, found
}

func TestMakeMountPoint(t *testing.T) {
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	h, ctx := hostops.New(), context.Background()
	shared, private := filepath.Join(dir, "shared"), filepath.Join(dir, "shared", "private")
	if err := os.MkdirAll(private, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := h.MakeMountPoint(ctx, shared, hostops.PropagationShared); err != nil {
			t.Fatal(err)
		}
	}
	if f, ok := propagationOf(t, shared); !ok || len(f) != 1 || !strings.HasPrefix(f[0], "shared:") {
		t.Fatalf("%s: mount point %v, fields %v; want shared", shared, ok, f)
	}
	// A mount made below the shared one is shared too; private takes it
	// out again.
	for range 2 {
		if err := h.MakeMountPoint(ctx, private, hostops.PropagationPrivate); err != nil {
			t.Fatal(err)
		}
	}
	if f, ok := propagationOf(t, private); !ok || len(f) != 0 {
		t.Fatalf("%s: mount point %v, fields %v; want private", private, ok, f)
	}
	if f, _ := propagationOf(t, shared); len(f) != 1 {
		t.Errorf("making a submount private changed its parent: %v", f)
	}
	if err := h.MakeMountPoint(ctx, shared, hostops.Propagation(0)); err == nil {
		t.Error("an unknown propagation was accepted")
	}
}
