package volumemanager

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
)

// crashChildEnv names the state file of a child process that runs a
// manager until it is killed (see TestMain).
const crashChildEnv = "VOLPLANE_VM_CRASH_CHILD"

// crashState is what the parent tells a child: the pods the agent lists
// and which of them have stopped.
type crashState struct {
	Root       string        `json:"root"`
	HostDir    string        `json:"hostDir"`
	Pods       []*corev1.Pod `json:"pods"`
	Terminated []types.UID   `json:"terminated"`
}

func TestMain(m *testing.M) {
	if f := os.Getenv(crashChildEnv); f != "" {
		os.Exit(crashChild(f))
	}
	os.Exit(m.Run())
}

// crashChild runs a manager over the state in file until killed.
func crashChild(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var st crashState
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pods := newFakePods(st.Pods...)
	for _, uid := range st.Terminated {
		pods.terminate(uid)
	}
	ps, err := newPlugins("")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	h := startNoTest(st.Root, hostops.New(), pods, ps)
	if h == nil {
		return 2
	}
	fmt.Println("running")
	select {}
}

func crashPod(i int, gen int, hostDir string) *corev1.Pod {
	uid := types.UID(fmt.Sprintf("crash-%d-%d", i, gen))
	return testPod(string(uid), uid,
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("1Mi"))}}},
		corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: filepath.Join(hostDir, string(uid)), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
	)
}

// duplicates returns mount points under root that appear more than once.
func duplicates(t *testing.T, root string) []string {
	seen := map[string]int{}
	var dup []string
	for _, m := range hostopstest.MountsUnder(t, root) {
		seen[m]++
		if seen[m] == 2 {
			dup = append(dup, m)
		}
	}
	return dup
}

// TestCrashConvergence kills a manager process with SIGKILL at random
// points while it mounts and unmounts, 100 times and more, changing
// which pods exist between kills; then a final manager must converge
// with no leaked mount, no duplicate mount and no lost file.
func TestCrashConvergence(t *testing.T) {
	root := rootDir(t)
	hostDir := t.TempDir()
	stateFile := filepath.Join(t.TempDir(), "state.json")
	iterations := 120
	if testing.Short() {
		iterations = 20
	}
	const slots = 5
	type slot struct {
		pod        *corev1.Pod
		terminated bool
		gen        int
		marker     bool // a file was written into its tmpfs
		diskMarker bool // and into its disk emptyDir
	}
	var s [slots]slot
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	memDir := func(p *corev1.Pod) string {
		return filepath.Join(root, "pods", string(p.UID), "volumes/kubernetes.io~empty-dir/mem")
	}
	diskDir := func(p *corev1.Pod) string {
		return filepath.Join(root, "pods", string(p.UID), "volumes/kubernetes.io~empty-dir/disk")
	}
	write := func() crashState {
		st := crashState{Root: root, HostDir: hostDir}
		for i := range s {
			if s[i].pod != nil {
				st.Pods = append(st.Pods, s[i].pod)
				if s[i].terminated {
					st.Terminated = append(st.Terminated, s[i].pod.UID)
				}
			}
		}
		b, _ := json.Marshal(st)
		if err := os.WriteFile(stateFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// check holds at every kill point: no mount twice, and every live
	// pod whose tmpfs once held a marker still has it there.
	check := func(it int) {
		if dup := duplicates(t, root); len(dup) > 0 {
			t.Fatalf("iteration %d: duplicate mounts %v", it, dup)
		}
		for i := range s {
			p := s[i].pod
			if p == nil || s[i].terminated {
				continue
			}
			mounted, _ := hostops.New().IsMountPoint(memDir(p))
			if s[i].marker {
				if b, err := os.ReadFile(filepath.Join(memDir(p), "marker")); err != nil || string(b) != string(p.UID) {
					t.Fatalf("iteration %d: pod %s lost its tmpfs file (mounted %v): %v", it, p.UID, mounted, err)
				}
			} else if mounted {
				if err := os.WriteFile(filepath.Join(memDir(p), "marker"), []byte(p.UID), 0o644); err != nil {
					t.Fatal(err)
				}
				s[i].marker = true
			}
			if s[i].diskMarker {
				if b, err := os.ReadFile(filepath.Join(diskDir(p), "marker")); err != nil || string(b) != string(p.UID) {
					t.Fatalf("iteration %d: pod %s lost its disk file: %v", it, p.UID, err)
				}
			} else if _, err := os.Stat(diskDir(p)); err == nil {
				if err := os.WriteFile(filepath.Join(diskDir(p), "marker"), []byte(p.UID), 0o644); err != nil {
					t.Fatal(err)
				}
				s[i].diskMarker = true
			}
		}
	}
	mountsSeen := 0
	for it := 0; it < iterations; it++ {
		for i := range s {
			switch {
			case s[i].pod == nil:
				if rng.IntN(2) == 0 {
					s[i].gen++
					s[i].pod, s[i].terminated, s[i].marker, s[i].diskMarker = crashPod(i, s[i].gen, hostDir), false, false, false
				}
			case !s[i].terminated:
				if rng.IntN(4) == 0 {
					s[i].terminated = true
				}
			default:
				if rng.IntN(2) == 0 {
					s[i].pod = nil // the agent forgot it while the manager was down
				}
			}
		}
		write()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+stateFile)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill at a random point after the manager started running.
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatalf("child did not start: %v", err)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		mountsSeen += len(hostopstest.MountsUnder(t, root))
		check(it)
	}
	// The kills must have hit a manager that was doing something.
	t.Logf("%d mounts seen at kill points", mountsSeen)
	if mountsSeen == 0 {
		t.Fatal("no child ever mounted anything: the kill points test nothing")
	}

	// Converge in process and check the exact result.
	st := write()
	pods := newFakePods(st.Pods...)
	for _, uid := range st.Terminated {
		pods.terminate(uid)
	}
	h := start(t, root, hostops.New(), pods, basicPlugins(t, ""))
	want := map[string]bool{}
	for i := range s {
		p := s[i].pod
		if p == nil {
			continue
		}
		if s[i].terminated {
			h.waitUnmounted(t, p)
			continue
		}
		h.waitMounted(t, p)
		want[memDir(p)] = true
	}
	// Pods forgotten while the manager was down: their volumes go too.
	waitFor(t, func() bool { return len(hostopstest.MountsUnder(t, root)) == len(want) })
	for _, m := range hostopstest.MountsUnder(t, root) {
		if !want[m] {
			t.Errorf("leaked mount %s", m)
		}
	}
	if dup := duplicates(t, root); len(dup) > 0 {
		t.Fatalf("duplicate mounts %v", dup)
	}
	check(iterations)
	h.stop()
}

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
