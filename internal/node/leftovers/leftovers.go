// Package leftovers removes what a stopped node agent leaves on purpose:
// a node agent never stops a container or unmounts a volume when it
// stops, so that pods run on and the next agent adopts them. A bench or a
// test that is done with its node calls Clean to end them for good.
package leftovers

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Clean undoes what a stopped node agent under dataDir leaves on
// purpose (pods keep running, volumes stay mounted): it kills and deletes
// the runc containers of its runtime, kills the conmon monitors whose
// command line names dataDir, removes the empty cgroups of its sandboxes,
// and unmounts every mount under dataDir, deepest first. It touches
// nothing that is not dataDir's.
func Clean(runc, dataDir string) error {
	var errs []error
	roots, _ := filepath.Glob(filepath.Join(dataDir, "*", "runtime", "runc"))
	for _, root := range roots {
		out, err := exec.Command(runc, "--root", root, "list", "-q").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("runc --root %s list: %w", root, err))
		}
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command(runc, "--root", root, "kill", id, "KILL").Run()
			if err := exec.Command(runc, "--root", root, "delete", "-f", id).Run(); err != nil {
				errs = append(errs, fmt.Errorf("runc delete -f %s: %w", id, err))
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(cmdline, []byte("conmon\x00")) && !bytes.Contains(cmdline, []byte("/conmon\x00")) {
			continue
		}
		if !bytes.Contains(cmdline, []byte(dataDir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	// The runtime removes a sandbox's cgroup (/volplane/<sandbox id> when
	// the agent gives no parent) only when the agent removes the sandbox;
	// those it never got to are left empty. Only directories named by this
	// data dir's sandbox records are removed, and only empty ones can be.
	records, _ := filepath.Glob(filepath.Join(dataDir, "*", "runtime", "sandboxes", "*.json"))
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, rec := range records {
		id := strings.TrimSuffix(filepath.Base(rec), ".json")
		for _, h := range append(hierarchies, "/sys/fs/cgroup") {
			_ = os.Remove(filepath.Join(h, "volplane", id))
		}
	}
	mounts, err := mountsUnder(dataDir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	slices.SortStableFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	return mounts, nil
}
