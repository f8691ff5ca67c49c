package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"volplane/internal/hostops"
)

// FloorResult is what RuncFloor measured.
type FloorResult struct {
	// Runs is the wall time of each `runc run` one after another, in
	// order.
	Runs []time.Duration
	// CPU is the user and system time runc and the container used over
	// the runs one after another.
	CPU time.Duration
	// Lanes is how many lanes ran the same number of runs at once; 0
	// when lanes were not asked for.
	Lanes int
	// LanesWall is the wall time from the first run's start in the
	// lanes to the last one's end, and LanesCPU their CPU time.
	LanesWall, LanesCPU time.Duration
}

// RuncFloor measures the runtime's floor for `volplane bench pods`: n bare
// `runc run` of the host image running `true`, one after another, from
// one bundle under a temporary directory in dir (removed afterwards);
// then, when lanes > 0, n more spread over that many lanes running at
// once, each from its own bundle and cgroup, as a burst of pods runs its
// containers. Nothing of volplane runs in between, so the figures are what
// any runc-based runtime pays per container on this machine, alone and
// side by side (they differ: runc runs contend on kernel locks, and each
// is a multi-threaded Go program).
func RuncFloor(ctx context.Context, runcPath, dir string, n, lanes int) (FloorResult, error) {
	runcPath, err := lookBinary(runcPath, "runc")
	if err != nil {
		return FloorResult{}, err
	}
	tmp, err := os.MkdirTemp(dir, "runc-floor-")
	if err != nil {
		return FloorResult{}, err
	}
	defer os.RemoveAll(tmp)
	f := &floorRunner{runc: runcPath, root: filepath.Join(tmp, "runc")}
	defer f.removeCgroups()

	var res FloorResult
	bundle, err := f.bundle(tmp, "bundle")
	if err != nil {
		return res, err
	}
	for i := range n {
		d, cpu, err := f.run(ctx, bundle, "floor-"+strconv.Itoa(i))
		res.Runs = append(res.Runs, d)
		res.CPU += cpu
		if err != nil {
			return res, err
		}
	}
	if lanes <= 0 {
		return res, nil
	}

	bundles := make([]string, lanes)
	for l := range bundles {
		if bundles[l], err = f.bundle(tmp, "lane-"+strconv.Itoa(l)); err != nil {
			return res, err
		}
	}
	var (
		mu   sync.Mutex
		errs []error
		next = make(chan int, n)
		wg   sync.WaitGroup
	)
	for i := range n {
		next <- i
	}
	close(next)
	start := time.Now()
	for l := range lanes {
		wg.Go(func() {
			for i := range next {
				_, cpu, err := f.run(ctx, bundles[l], "lane-"+strconv.Itoa(i))
				mu.Lock()
				res.LanesCPU += cpu
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	res.LanesWall, res.Lanes = time.Since(start), lanes
	return res, errors.Join(errs...)
}

// floorRunner runs bare containers with one runc state root.
type floorRunner struct {
	runc, root string
	cgroups    []string
}

// run is one `runc run` of the bundle: its wall and CPU time.
func (f *floorRunner) run(ctx context.Context, bundle, id string) (time.Duration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, f.runc, "--root", f.root, "run", "--bundle", bundle, id)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return wall, cpu, &hostops.ExecError{Command: cmd.Args, ExitCode: exitCodeOf(err), Stderr: runcMessage(string(out)), Err: err}
	}
	return wall, cpu, nil
}

// bundle writes a bundle named name under tmp: the host image running
// `true`, with a cgroup of its own so that nothing else's cgroup is
// touched (runc removes it after each run; removeCgroups makes sure).
func (f *floorRunner) bundle(tmp, name string) (string, error) {
	bundle := filepath.Join(tmp, name)
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		return "", err
	}
	cgroup := filepath.Join("/volplane", filepath.Base(tmp)+"-"+name)
	spec, err := buildSpec(specInput{
		Sandbox:     &runtimeapi.PodSandboxConfig{Hostname: "floor"},
		Container:   &runtimeapi.ContainerConfig{Command: []string{"true"}},
		Root:        filepath.Join(bundle, "rootfs"),
		CgroupsPath: cgroup,
	})
	if err != nil {
		return "", err
	}
	f.cgroups = append(f.cgroups, cgroup)
	js, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), js, 0o600); err != nil {
		return "", err
	}
	return bundle, nil
}

func (f *floorRunner) removeCgroups() {
	for _, c := range f.cgroups {
		removeCgroup(c)
	}
}
