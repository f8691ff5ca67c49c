package runtime

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
)

// FloorResult is what RuncFloor measured.
type FloorResult struct {
	// Runs is the wall time of each `runc run`, in order.
	Runs []time.Duration
	// CPU is the user and system time runc and the container used over
	// all runs.
	CPU time.Duration
}

// RuncFloor measures the runtime's floor for `volplane bench pods`: n bare
// `runc run` of the host image running `true`, one after another, from
// one bundle under a temporary directory in dir (removed afterwards).
// Nothing of volplane runs in between, so the figure is what any
// runc-based runtime pays per container on this machine.
func RuncFloor(ctx context.Context, runcPath, dir string, n int) (FloorResult, error) {
	runcPath, err := lookBinary(runcPath, "runc")
	if err != nil {
		return FloorResult{}, err
	}
	tmp, err := os.MkdirTemp(dir, "runc-floor-")
	if err != nil {
		return FloorResult{}, err
	}
	defer os.RemoveAll(tmp)
	bundle, root := filepath.Join(tmp, "bundle"), filepath.Join(tmp, "runc")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		return FloorResult{}, err
	}
	spec, err := buildSpec(specInput{
		Sandbox:   &runtimeapi.PodSandboxConfig{Hostname: "floor"},
		Container: &runtimeapi.ContainerConfig{Command: []string{"true"}},
		Root:      filepath.Join(bundle, "rootfs"),
		// A path of its own so that nothing else's cgroup is touched.
		CgroupsPath: filepath.Join("/volplane", filepath.Base(tmp)),
	})
	if err != nil {
		return FloorResult{}, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return FloorResult{}, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), js, 0o600); err != nil {
		return FloorResult{}, err
	}
	defer removeCgroup(spec.Linux.CgroupsPath)
	var res FloorResult
	for i := range n {
		cmd := exec.CommandContext(ctx, runcPath, "--root", root, "run", "--bundle", bundle, "floor-"+strconv.Itoa(i))
		start := time.Now()
		out, err := cmd.CombinedOutput()
		res.Runs = append(res.Runs, time.Since(start))
		if err != nil {
			return res, &hostops.ExecError{Command: cmd.Args, ExitCode: exitCodeOf(err), Stderr: runcMessage(string(out)), Err: err}
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.CPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return res, nil
}
