package atomicwriter

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func readLink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func versions(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") && e.Name() != dataDirName {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestValidatePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		err  string
	}{
		{"a", ""},
		{"a/b/c", ""},
		{"a..b", ""},
		{"", "must not be empty"},
		{"/etc/passwd", "must be relative path"},
		{"a/../b", "must not contain '..'"},
		{"..", "must not contain '..'"},
		{"..data", "must not start with '..'"},
		{strings.Repeat("x", 256), "filenames must be less than or equal to 255 characters"},
		{strings.Repeat("x/", 2049), "must be less than or equal to 4096 characters"},
	} {
		err := validatePath(tc.path)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("validatePath(%.20q) = %v, want %q", tc.path, err, tc.err)
		}
	}
	if _, err := validate(Payload{"a": {}, "a/b": {}}); err == nil {
		t.Error("a payload with a file that is also a directory was accepted")
	}
}

func TestLayoutUpdateAndNoop(t *testing.T) {
	dir := t.TempDir()
	p := Payload{
		"key":          {Data: []byte("v1"), Mode: 0o644},
		"conf/app.ini": {Data: []byte("x=1"), Mode: 0o400},
		"gone":         {Data: []byte("bye"), Mode: 0o644},
	}
	changed, err := Write(dir, p, nil)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	v1 := readLink(t, filepath.Join(dir, dataDirName))
	if !strings.HasPrefix(v1, "..20") {
		t.Errorf("..data -> %q, want a timestamped directory", v1)
	}
	for name, want := range map[string]string{"key": "..data/key", "conf": "..data/conf", "gone": "..data/gone"} {
		if got := readLink(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "conf/app.ini"))
	if err != nil || string(b) != "x=1" {
		t.Errorf("conf/app.ini = %q, %v", b, err)
	}
	st, err := os.Stat(filepath.Join(dir, "conf/app.ini"))
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("conf/app.ini mode %v, %v; want 0400", st.Mode(), err)
	}

	// The same payload again changes nothing.
	ino := inode(t, filepath.Join(dir, "key"))
	changed, err = Write(dir, p, nil)
	if err != nil || changed {
		t.Fatalf("same payload: changed=%v err=%v", changed, err)
	}
	if got := readLink(t, filepath.Join(dir, dataDirName)); got != v1 || inode(t, filepath.Join(dir, "key")) != ino {
		t.Errorf("same payload rewrote the volume: ..data %q -> %q", v1, got)
	}

	// An update swaps ..data, adds and removes keys, drops the old version.
	p2 := Payload{"key": {Data: []byte("v2"), Mode: 0o644}, "conf/app.ini": {Data: []byte("x=1"), Mode: 0o400}, "new": {Data: []byte("n"), Mode: 0o600}}
	changed, err = Write(dir, p2, nil)
	if err != nil || !changed {
		t.Fatalf("update: changed=%v err=%v", changed, err)
	}
	v2 := readLink(t, filepath.Join(dir, dataDirName))
	if v2 == v1 {
		t.Error("update did not make a new version")
	}
	if vs := versions(t, dir); len(vs) != 1 || vs[0] != v2 {
		t.Errorf("versions on disk %v, want only %s", vs, v2)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "key")); string(b) != "v2" {
		t.Errorf("key = %q after update", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("removed key still visible: %v", err)
	}
	if got := readLink(t, filepath.Join(dir, "new")); got != "..data/new" {
		t.Errorf("new -> %q", got)
	}
	// A mode change alone is a change.
	p2["new"] = File{Data: []byte("n"), Mode: 0o644}
	if changed, err := Write(dir, p2, nil); err != nil || !changed {
		t.Errorf("mode change: changed=%v err=%v", changed, err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestCrashLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	p := Payload{"a": {Data: []byte("1"), Mode: 0o644}}
	if _, err := Write(dir, p, nil); err != nil {
		t.Fatal(err)
	}
	// A write killed after making its directory and temporary link.
	stale := filepath.Join(dir, "..2020_01_01_00_00_00.000000001")
	if err := os.MkdirAll(filepath.Join(stale, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(stale), filepath.Join(dir, newDataDirName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale version directory kept: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, newDataDirName)); !os.IsNotExist(err) {
		t.Errorf("stale %s kept: %v", newDataDirName, err)
	}
}

func TestSymlinksNeverFollowed(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("visible name planted as a symlink out", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(victim, filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		if _, err := Write(dir, Payload{"a": {Data: []byte("new"), Mode: 0o644}}, ptr(int64(1234))); err != nil {
			t.Fatal(err)
		}
		if got := readLink(t, filepath.Join(dir, "a")); got != "..data/a" {
			t.Errorf("a -> %q", got)
		}
	})
	t.Run("..data planted pointing out", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(dir, dataDirName)); err != nil {
			t.Fatal(err)
		}
		if _, err := Write(dir, Payload{"victim": {Data: []byte("new"), Mode: 0o644}}, nil); err == nil {
			t.Error("Write accepted a ..data pointing outside the volume")
		}
	})
	t.Run("volume directory is a symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "vol")
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
		if _, err := Write(link, Payload{"victim": {Data: []byte("new"), Mode: 0o644}}, nil); err == nil {
			t.Error("Write followed a volume directory that is a symlink")
		}
	})
	st, err := os.Stat(victim)
	b, _ := os.ReadFile(victim)
	if err != nil || string(b) != "keep" || st.Sys().(*syscall.Stat_t).Gid == 1234 || st.Mode().Perm() != 0o644 {
		t.Errorf("file outside the volume changed: %q %v %v", b, st.Mode(), err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files appeared outside the volume: %v", entries)
	}
}
