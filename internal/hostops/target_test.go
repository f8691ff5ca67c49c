package hostops_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

func TestOpenTarget(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		path        string
		file        bool
		wantCreated bool
		wantErr     error // nil: any error is a failure; errAny: some error
	}{
		{name: "new directory and its parents", path: dir + "/a/b/c", wantCreated: true},
		{name: "existing directory", path: dir + "/a/b", wantCreated: false},
		{name: "new file", path: dir + "/a/dev", file: true, wantCreated: true},
		{name: "existing file", path: dir + "/file", file: true, wantCreated: false},
		{name: "symlink as a parent", path: dir + "/link/x", wantErr: hostops.ErrSymlinkInPath},
		{name: "symlink as the target", path: dir + "/link", wantErr: hostops.ErrSymlinkInPath},
		{name: "file where a directory is wanted", path: dir + "/file", wantErr: hostops.ErrTargetKind},
		{name: "directory where a file is wanted", path: dir + "/a", file: true, wantErr: hostops.ErrTargetKind},
		{name: "relative", path: "a/b", wantErr: errAny},
		{name: "not clean", path: dir + "/a/../a", wantErr: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := hostops.OpenTarget(tc.path, tc.file)
			if tc.wantErr != nil {
				if err == nil {
					target.Close()
					t.Fatalf("OpenTarget(%s) succeeded, want an error", tc.path)
				}
				if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenTarget(%s) = %v, want %v", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenTarget(%s): %v", tc.path, err)
			}
			defer target.Close()
			if target.Created != tc.wantCreated {
				t.Errorf("Created = %t, want %t", target.Created, tc.wantCreated)
			}
			if got, err := os.Readlink(target.Path()); err != nil || got != tc.path {
				t.Errorf("%s names %q (%v), want %s", target.Path(), got, err, tc.path)
			}
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("something was made through the symlink: %v", entries)
	}
}

var errAny = errors.New("any error")

// A target swapped for a symlink after it was opened still gets the
// mount: the mount goes where the descriptor points, never through the
// new symlink.
func TestBindMountOnTargetIgnoresLaterSymlink(t *testing.T) {
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	h := hostops.New()
	ctx := context.Background()
	src, victim := filepath.Join(dir, "src"), filepath.Join(dir, "victim")
	for _, d := range []string{src, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "parent", "target")
	target, err := hostops.OpenTarget(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	// The parent is replaced by a symlink to the victim.
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(filepath.Join(dir, "parent"), moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "parent")); err != nil {
		t.Fatal(err)
	}
	if err := h.BindMount(ctx, src, target.Path(), []string{"ro"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, "target", "data")); err != nil {
		t.Fatalf("the mount is not on the opened directory: %v", err)
	}
	if mounted, _ := h.IsMountPoint(filepath.Join(victim, "target")); mounted {
		t.Fatal("the mount went through the symlink")
	}
	if err := os.WriteFile(filepath.Join(moved, "target", "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write on the read-only bind: %v, want EROFS", err)
	}
}
