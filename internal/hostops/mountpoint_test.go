package hostops_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

// IsMountPoint answers from statx; each answer must be the mount table's:
// a tmpfs, a bind mount on the same filesystem, a bind mount of a
// directory onto itself, and the paths around them that are no mounts.
func TestIsMountPointAgreesWithTheMountTable(t *testing.T) {
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	h := hostops.New()
	ctx := context.Background()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, d := range []string{"tmpfs", "src", "bind", "self", "plain", "tmpfs-parent/x"} {
		if err := os.MkdirAll(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Mount(ctx, "tmpfs", p("tmpfs"), "tmpfs", []string{"size=1m"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p("tmpfs/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.BindMount(ctx, p("src"), p("bind"), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.BindMount(ctx, p("self"), p("self"), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("tmpfs"), p("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"tmpfs", true},
		{"tmpfs/sub", false},
		{"bind", true},
		{"src", false},
		{"self", true},
		{"plain", false},
		{"tmpfs-parent/x", false},
		{"link", false},
		{"file", false},
		{"missing", false},
		{"missing/deeper", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got, err := h.IsMountPoint(p(tc.path))
			if err != nil {
				t.Fatalf("IsMountPoint(%s): %v", tc.path, err)
			}
			inTable := false
			mps, err := h.Mounts()
			if err != nil {
				t.Fatal(err)
			}
			for _, mp := range mps {
				if mp.Path == p(tc.path) {
					inTable = true
				}
			}
			if got != tc.want || got != inTable {
				t.Fatalf("IsMountPoint(%s) = %t, want %t (mount table: %t)", tc.path, got, tc.want, inTable)
			}
		})
	}
	// The root of the machine is a mount point too.
	if got, err := h.IsMountPoint("/"); err != nil || !got {
		t.Fatalf(`IsMountPoint("/") = %t, %v; want true`, got, err)
	}
}
