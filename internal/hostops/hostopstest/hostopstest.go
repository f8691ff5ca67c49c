package hostopstest

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
)

// RequireRoot skips the test unless it runs as root; under CI=true it
// fails instead, so a root test never passes by not running.
func RequireRoot(t testing.TB) {
	t.Helper()
	requireRoot(t, os.Geteuid(), os.Getenv("CI"))
}

func requireRoot(t testing.TB, euid int, ci string) {
	t.Helper()
	if euid == 0 {
		return
	}
	if ci == "true" {
		t.Fatal("needs root: mounts, loop devices and btrfs")
		return
	}
	t.Skip("needs root: mounts, loop devices and btrfs")
}

// LoopFS makes a sparse image of size bytes in a fresh temporary
// directory, formats it with fstype, mounts it and returns the mount
// point. Everything under the temporary directory is unmounted and
// detached when the test ends.
func LoopFS(t testing.TB, fstype string, size int64) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { Teardown(t, dir) })
	img := filepath.Join(dir, fstype+".img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	host := hostops.New()
	ctx := context.Background()
	if err := host.Mkfs(ctx, img, fstype); err != nil {
		t.Fatalf("mkfs %s: %v", fstype, err)
	}
	dev, err := host.LoopAttach(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := host.Mount(ctx, dev, mnt, fstype, nil); err != nil {
		t.Fatalf("mount %s: %v", fstype, err)
	}
	if err := host.LoopAutoclear(ctx, dev); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// Teardown unmounts every mount under dir, deepest first, and detaches
// every loop device whose backing file is under dir. It reports what it
// could not remove as a test error.
func Teardown(t testing.TB, dir string) {
	t.Helper()
	host := hostops.New()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Detaching a busy device makes the kernel detach it when its
		// last user (a mount) goes away, which frees the filesystem
		// holding its file for the next round.
		for _, dev := range LoopDevicesUnder(dir) {
			_ = host.LoopDetach(ctx, dev)
		}
		mounts := MountsUnder(t, dir)
		var errs []string
		for _, m := range mounts {
			if err := host.Unmount(ctx, m); err != nil {
				errs = append(errs, err.Error())
			}
		}
		left := MountsUnder(t, dir)
		loops := LoopDevicesUnder(dir)
		if len(left) == 0 && len(loops) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("teardown of %s left mounts %v and loop devices %v (%s)", dir, left, loops, strings.Join(errs, "; "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MountsUnder lists the mount points under dir, deepest first.
func MountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	mps, err := hostops.New().Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(mps) - 1; i >= 0; i-- {
		p := mps[i].Path
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// MountsAt lists the mounts at path, bottom first, from the mount table.
func MountsAt(t testing.TB, path string) []hostops.MountPoint {
	t.Helper()
	mps, err := hostops.New().Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var at []hostops.MountPoint
	for _, m := range mps {
		if m.Path == path {
			at = append(at, m)
		}
	}
	return at
}

// MountCount is how many mounts the mount table has at path.
func MountCount(t testing.TB, path string) int {
	t.Helper()
	return len(MountsAt(t, path))
}

// FSTypeAt is the filesystem type of the mount seen at path (the top
// one), or "" when nothing is mounted there.
func FSTypeAt(t testing.TB, path string) string {
	t.Helper()
	at := MountsAt(t, path)
	if len(at) == 0 {
		return ""
	}
	return at[len(at)-1].FSType
}

// LoopDevicesUnder lists the loop devices whose backing file is under dir.
func LoopDevicesUnder(dir string) []string {
	entries, _ := os.ReadDir("/sys/block")
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "loop", "backing_file"))
		if err != nil {
			continue
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if strings.HasPrefix(backing, dir+"/") {
			out = append(out, "/dev/"+e.Name())
		}
	}
	return out
}

// Fill writes up to n bytes to path in 1 MiB steps, syncing each, and
// returns how many bytes landed and the error that stopped it: how a test
// finds where a capacity limit stops writes.
func Fill(path string, n int64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	var written int64
	for written < n {
		m, err := f.Write(chunk)
		written += int64(m)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// StatfsTotal is the size in bytes of the filesystem holding path.
func StatfsTotal(t testing.TB, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}
