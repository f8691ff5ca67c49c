package subpath

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		sub, err string
	}{
		{"a/b", ""},
		{"a..b/c", ""},
		{"/etc", "error SubPath `/etc` must not be an absolute path"},
		{"../x", "unable to provision SubPath `../x`: must not contain '..'"},
		{"a/../../x", "unable to provision SubPath `a/../../x`: must not contain '..'"},
		{"a/..", "unable to provision SubPath `a/..`: must not contain '..'"},
	} {
		err := Validate(tc.sub)
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("Validate(%q) = %v, want %q", tc.sub, err, tc.err)
		}
	}
}

type env struct {
	vol, outside, pod string
}

func newEnv(t *testing.T) env {
	t.Helper()
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, dir) })
	e := env{vol: filepath.Join(dir, "vol"), outside: filepath.Join(dir, "outside"), pod: filepath.Join(dir, "pod")}
	for _, d := range []string{e.vol, e.outside, e.pod} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// TestPrepareRoot covers every escape on real mounts: each refused
// attempt leaves nothing mounted and nothing created outside the volume.
func TestPrepareRoot(t *testing.T) {
	e := newEnv(t)
	ops := hostops.New()
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(e.vol, "in/deep"), 0o755))
	must(os.WriteFile(filepath.Join(e.vol, "in/file"), []byte("data"), 0o644))
	must(os.Symlink("/", filepath.Join(e.vol, "abs")))
	must(os.Symlink(e.outside, filepath.Join(e.vol, "absout")))
	must(os.Symlink("../outside", filepath.Join(e.vol, "relout")))
	must(os.Symlink("in/deep", filepath.Join(e.vol, "relin")))
	must(os.Symlink("/proc/self/root", filepath.Join(e.vol, "magic")))
	must(os.Symlink("../../outside/secret", filepath.Join(e.vol, "in/filelink")))

	for i, tc := range []struct {
		sub    string
		same   string // the object the target must show
		escape bool
		err    string
	}{
		{sub: "in/deep", same: "in/deep"},
		{sub: "in/file", same: "in/file"},
		{sub: "relin", same: "in/deep"},
		{sub: "new/dirs/made", same: "new/dirs/made"},
		{sub: ".", same: "."},
		{sub: "abs", escape: true},
		{sub: "absout", escape: true},
		{sub: "absout/secret", escape: true},
		{sub: "relout", escape: true},
		{sub: "relout/newdir", escape: true},
		{sub: "magic/etc", escape: true},
		{sub: "in/filelink", escape: true},
		{sub: "/etc", err: "must not be an absolute path"},
		{sub: "../outside", err: "must not contain '..'"},
		{sub: "in/../../outside", err: "must not contain '..'"},
	} {
		target := Target(e.pod, "v", "c", i)
		err := Prepare(ctx, ops, e.vol, tc.sub, target)
		switch {
		case tc.escape:
			if !errors.Is(err, ErrEscape) {
				t.Errorf("%q: err = %v, want an escape", tc.sub, err)
			}
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.sub, err, tc.err)
			}
		default:
			if err != nil {
				t.Errorf("%q: %v", tc.sub, err)
				continue
			}
			if !sameFile(t, target, filepath.Join(e.vol, tc.same)) {
				t.Errorf("%q: target is not %s", tc.sub, tc.same)
			}
			// Idempotent: a second call mounts nothing more.
			if err := Prepare(ctx, ops, e.vol, tc.sub, target); err != nil {
				t.Errorf("%q again: %v", tc.sub, err)
			}
			if n := len(hostopstest.MountsUnder(t, target)); n != 1 {
				t.Errorf("%q: mounted %d times", tc.sub, n)
			}
		}
		if tc.escape || tc.err != "" {
			if n := len(hostopstest.MountsUnder(t, target)); n != 0 {
				t.Errorf("%q: refused but mounted", tc.sub)
			}
		}
	}
	entries, _ := os.ReadDir(e.outside)
	if len(entries) != 1 {
		t.Errorf("something was created outside the volume: %v", entries)
	}
	must(Clean(ctx, ops, e.pod, "v"))
	if left := hostopstest.MountsUnder(t, e.pod); len(left) != 0 {
		t.Fatalf("Clean left %v", left)
	}
	if _, err := os.Stat(filepath.Join(e.pod, "volume-subpaths", "v")); !os.IsNotExist(err) {
		t.Fatalf("Clean left the volume's subpath directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(e.vol, "in/file")); err != nil || string(b) != "data" {
		t.Fatalf("Clean touched the volume: %q %v", b, err)
	}
}

// TestSwapRace swaps a path component between a directory inside the
// volume and a symlink out of it while Prepare runs, many times: every
// mount that succeeds shows the inside directory, never the outside.
func TestSwapRace(t *testing.T) {
	e := newEnv(t)
	ops := hostops.New()
	ctx := context.Background()
	inside := filepath.Join(e.vol, "real")
	if err := os.MkdirAll(filepath.Join(inside, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	swap := filepath.Join(e.vol, "swap")
	if err := os.Symlink("real", swap); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() {
		close(stop)
		<-done
	}()
	go func() {
		defer close(done)
		tmpDir, tmpLink := filepath.Join(e.vol, ".d"), filepath.Join(e.vol, ".l")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Alternate atomically between a symlink out and a symlink
			// in (renameat2 RENAME_EXCHANGE is not needed: rename over
			// the name is atomic).
			if i%2 == 0 {
				_ = os.Remove(tmpLink)
				_ = os.Symlink(e.outside, tmpLink)
				_ = os.Rename(tmpLink, swap)
			} else {
				_ = os.Remove(tmpDir)
				_ = os.Symlink("real", tmpDir)
				_ = os.Rename(tmpDir, swap)
			}
		}
	}()
	ok, refused := 0, 0
	for i := 0; i < 300; i++ {
		target := Target(e.pod, "v", "c", i)
		err := Prepare(ctx, ops, e.vol, "swap/x", target)
		switch {
		case err == nil:
			ok++
			if !sameFile(t, target, filepath.Join(inside, "x")) {
				t.Fatalf("iteration %d: the mount is not the inside directory", i)
			}
		case errors.Is(err, ErrEscape), errors.Is(err, os.ErrNotExist), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			refused++
			if n := len(hostopstest.MountsUnder(t, target)); n != 0 {
				t.Fatalf("iteration %d: refused but mounted", i)
			}
		default:
			t.Fatalf("iteration %d: %v", i, err)
		}
	}
	if entries, _ := os.ReadDir(e.outside); len(entries) != 1 {
		t.Errorf("something was created outside the volume: %v", entries)
	}
	// The outside directory has no x: a mount of it would have failed
	// or been empty; make sure neither happened silently.
	if _, err := os.Stat(filepath.Join(e.outside, "x")); !os.IsNotExist(err) {
		t.Errorf("x created outside the volume")
	}
	t.Logf("%d mounted, %d refused", ok, refused)
	if err := Clean(ctx, ops, e.pod, "v"); err != nil {
		t.Fatal(err)
	}
}
