package atomicwriter

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"volplane/internal/hostops/hostopstest"
)

// TestOwnership needs root: it gives files an owner and a group.
func TestOwnership(t *testing.T) {
	hostopstest.RequireRoot(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	gid := int64(4321)
	p := Payload{
		"token":    {Data: []byte("t"), Mode: 0o600},
		"user":     {Data: []byte("u"), Mode: 0o400, FsUser: ptr(int64(1001))},
		"sub/file": {Data: []byte("f"), Mode: 0o644},
	}
	if _, err := Write(dir, p, &gid); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
		uid  uint32
	}{
		{".", 0o777 | os.ModeSetgid, 0},
		{"token", 0o640, 0}, // upstream: 0600 becomes 0640 with an fsGroup
		{"user", 0o440, 1001},
		{"sub", 0o755 | os.ModeSetgid, 0},
		{"sub/file", 0o644, 0},
		{"..data", 0o755 | os.ModeSetgid, 0},
	} {
		st, err := os.Stat(filepath.Join(dir, tc.path))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode()&(os.ModePerm|os.ModeSetgid) != tc.mode || sys.Gid != uint32(gid) || sys.Uid != tc.uid {
			t.Errorf("%s: mode %v uid %d gid %d, want %v uid %d gid %d", tc.path, st.Mode(), sys.Uid, sys.Gid, tc.mode, tc.uid, gid)
		}
	}
	for _, link := range []string{"token", "sub", dataDirName} {
		st, err := os.Lstat(filepath.Join(dir, link))
		if err != nil {
			t.Fatal(err)
		}
		if g := st.Sys().(*syscall.Stat_t).Gid; g != uint32(gid) {
			t.Errorf("symlink %s has group %d, want %d", link, g, gid)
		}
	}
	// Same payload, same group: nothing to do.
	if changed, err := Write(dir, p, &gid); err != nil || changed {
		t.Errorf("same payload and group: changed=%v err=%v", changed, err)
	}
	// Another group is a change.
	other := int64(4322)
	if changed, err := Write(dir, p, &other); err != nil || !changed {
		t.Errorf("new fsGroup: changed=%v err=%v", changed, err)
	}
}
