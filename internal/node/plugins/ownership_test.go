package plugins

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"volplane/internal/hostops/hostopstest"
)

func gidMode(t *testing.T, p string) (uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Gid, fi.Mode()
}

func TestSetVolumeOwnership(t *testing.T) {
	hostopstest.RequireRoot(t)
	onRoot := ptr.To(corev1.FSGroupChangeOnRootMismatch)
	always := ptr.To(corev1.FSGroupChangeAlways)
	for _, tc := range []struct {
		name       string
		fsGroup    *int64
		policy     *corev1.PodFSGroupChangePolicy
		rootReady  bool // the root already has the group and mode
		wantFileGI uint32
	}{
		{name: "no fsGroup", fsGroup: nil, policy: always, wantFileGI: 0},
		{name: "always walks", fsGroup: ptr.To[int64](2000), policy: always, rootReady: true, wantFileGI: 2000},
		{name: "OnRootMismatch skips a ready root", fsGroup: ptr.To[int64](2000), policy: onRoot, rootReady: true, wantFileGI: 0},
		{name: "OnRootMismatch walks on mismatch", fsGroup: ptr.To[int64](2000), policy: onRoot, wantFileGI: 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "sub", "f")
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			if tc.rootReady {
				os.Chown(dir, 0, 2000)
				os.Chmod(dir, 0o770|os.ModeSetgid)
			}
			if err := SetVolumeOwnership(dir, tc.fsGroup, tc.policy, false); err != nil {
				t.Fatal(err)
			}
			gid, mode := gidMode(t, file)
			if gid != tc.wantFileGI {
				t.Fatalf("file gid %d, want %d", gid, tc.wantFileGI)
			}
			if tc.wantFileGI != 0 && mode.Perm()&0o060 != 0o060 {
				t.Fatalf("file mode %v lacks group rw", mode)
			}
			if g, _ := gidMode(t, "/etc/passwd"); g != 0 {
				t.Fatal("followed a symlink out of the volume")
			}
		})
	}
}
