package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"volplane/internal/hostops"
)

// TestVolumeTypes runs one pod with every pod-lifetime and host volume
// type on `volplane up`, and checks each as a user of Kubernetes would
// (kubectl exec) and as an operator would (the pod directory at
// upstream's paths, the mount table): content, modes, secrets and memory
// emptyDirs on tmpfs, a configMap change reaching the running pod, a
// hostPath subPath, and everything gone once the pod is.
func TestVolumeTypes(t *testing.T) {
	p := startUp(t)
	p.WaitPodsAccepted(t)
	hostDir := t.TempDir()
	p.MustKubectl(t, "create", "configmap", "cm1", "--from-literal=a=1", "--from-literal=b=2")
	p.MustKubectl(t, "create", "secret", "generic", "s1", "--from-literal=k=v")
	p.Apply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {app: vols}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "exec sleep 3600"]
    volumeMounts:
    - {name: cm, mountPath: /cm}
    - {name: cm-items, mountPath: /cm-items}
    - {name: sec, mountPath: /sec}
    - {name: scratch, mountPath: /scratch}
    - {name: mem, mountPath: /mem}
    - {name: info, mountPath: /info}
    - {name: proj, mountPath: /proj}
    - {name: hp, mountPath: /hp, subPath: sub}
  volumes:
  - {name: cm, configMap: {name: cm1}}
  - name: cm-items
    configMap: {name: cm1, items: [{key: a, path: sub/a.txt, mode: 0400}]}
  - {name: sec, secret: {secretName: s1, defaultMode: 0440}}
  - {name: scratch, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - name: info
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
  - name: proj
    projected:
      sources:
      - serviceAccountToken: {path: token, audience: e2e, expirationSeconds: 3600}
      - configMap: {name: cm1, items: [{key: b, path: b}]}
  - {name: hp, hostPath: {path: %s, type: DirectoryOrCreate}}
`, filepath.Join(hostDir, "hp")))
	eventually(t, 2*time.Minute, func() error {
		out, err := p.Kubectl("get", "pod", "vols", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Running" {
			return fmt.Errorf("pod vols is %q (%v), want Running", out, err)
		}
		return nil
	})
	uid := p.MustKubectl(t, "get", "pod", "vols", "-o", "jsonpath={.metadata.uid}")
	podDir := filepath.Join(p.DataDir, "kubelet", "pods", uid)
	exec := func(t *testing.T, script string) string {
		t.Helper()
		out, err := p.Kubectl("exec", "vols", "--", "sh", "-c", script)
		if err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		return strings.TrimSpace(out)
	}
	mountAt := func(path string) (hostops.MountPoint, bool) {
		mps, err := hostops.New().Mounts()
		if err != nil {
			t.Fatal(err)
		}
		for i := len(mps) - 1; i >= 0; i-- {
			if mps[i].Path == path {
				return mps[i], true
			}
		}
		return hostops.MountPoint{}, false
	}

	t.Run("content-and-modes", func(t *testing.T) {
		for script, want := range map[string]string{
			"cat /cm/a /cm/b":                       "12",
			"cat /cm-items/sub/a.txt":               "1",
			"stat -L -c %a /cm-items/sub/a.txt":     "400",
			"cat /sec/k":                            "v",
			"stat -L -c %a /sec/k":                  "440",
			"cat /info/name":                        "vols",
			"cat /info/labels":                      `app="vols"`,
			"cat /proj/b":                           "2",
			"tr -cd . < /proj/token | wc -c":        "2",
			"echo x > /scratch/f && cat /scratch/f": "x",
		} {
			if got := exec(t, script); got != want {
				t.Errorf("%s: got %q, want %q", script, got, want)
			}
		}
	})

	t.Run("upstream-paths", func(t *testing.T) {
		for _, dir := range []string{
			"kubernetes.io~configmap/cm", "kubernetes.io~configmap/cm-items", "kubernetes.io~secret/sec",
			"kubernetes.io~empty-dir/scratch", "kubernetes.io~empty-dir/mem",
			"kubernetes.io~downward-api/info", "kubernetes.io~projected/proj",
		} {
			if fi, err := os.Stat(filepath.Join(podDir, "volumes", dir)); err != nil || !fi.IsDir() {
				t.Errorf("pod volume directory %s: %v", dir, err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "scratch", "f")); err != nil || string(b) != "x\n" {
			t.Errorf("the emptyDir's file on the host: %q, %v", b, err)
		}
	})

	t.Run("secrets-and-memory-on-tmpfs", func(t *testing.T) {
		for _, dir := range []string{"kubernetes.io~secret/sec", "kubernetes.io~projected/proj", "kubernetes.io~empty-dir/mem"} {
			mp, ok := mountAt(filepath.Join(podDir, "volumes", dir))
			if !ok || mp.FSType != "tmpfs" {
				t.Errorf("%s is not a tmpfs: %+v", dir, mp)
			}
		}
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "mem"), &st); err != nil {
			t.Fatal(err)
		}
		if size := int64(st.Blocks) * st.Bsize; size != 16<<20 {
			t.Errorf("the memory emptyDir is %d bytes, want its sizeLimit 16Mi", size)
		}
		if _, ok := mountAt(filepath.Join(podDir, "volumes", "kubernetes.io~configmap", "cm")); ok {
			t.Error("a configMap volume is a mount; upstream keeps it on disk")
		}
	})

	t.Run("hostpath-subpath", func(t *testing.T) {
		exec(t, "echo from-pod > /hp/f")
		if b, err := os.ReadFile(filepath.Join(hostDir, "hp", "sub", "f")); err != nil || string(b) != "from-pod\n" {
			t.Fatalf("hostPath subPath file on the host: %q, %v", b, err)
		}
	})

	t.Run("configmap-update-reaches-the-pod", func(t *testing.T) {
		p.MustKubectl(t, "patch", "configmap", "cm1", "-p", `{"data":{"a":"changed"}}`)
		// Upstream's kubelet takes up to its sync period plus the cache
		// TTL (about a minute); the limit only detects a hang.
		eventually(t, 3*time.Minute, func() error {
			if got := exec(t, "cat /cm/a /cm-items/sub/a.txt"); got != "changedchanged" {
				return fmt.Errorf("the pod sees %q", got)
			}
			return nil
		})
	})

	t.Run("gitrepo-refused-as-upstream", func(t *testing.T) {
		p.Apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: git}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: g, mountPath: /g}]}
  volumes:
  - {name: g, gitRepo: {repository: "https://example.invalid/r.git"}}
`)
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("get", "events", "--field-selector", "involvedObject.name=git,reason=FailedMount", "-o", "jsonpath={.items[*].message}")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "git-repo volume plugin has been disabled") {
				return fmt.Errorf("no FailedMount event with upstream's refusal: %q", out)
			}
			return nil
		})
		if phase := p.MustKubectl(t, "get", "pod", "git", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
			t.Fatalf("the gitRepo pod is %s, want Pending", phase)
		}
		p.MustKubectl(t, "delete", "pod", "git", "--wait=true", "--timeout=2m")
	})

	// up puts size-limited disk emptyDirs on the built-in driver's
	// btrfs pool, as quota-limited subvolumes: the writer is stopped at
	// the limit (EDQUOT) instead of upstream's eviction after the fact.
	// (Where no quota is possible, package eviction evicts the pod; its
	// tests cover that.)
	t.Run("emptydir-sizelimit-enforced-by-quota", func(t *testing.T) {
		p.Apply(t, `
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "dd if=/dev/zero of=/scratch/f bs=64k count=64 conv=fsync 2>&1; echo dd-exit=$?; exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
`)
		eventually(t, 2*time.Minute, func() error {
			out, err := p.Kubectl("logs", "hog")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "dd-exit=") {
				return fmt.Errorf("the writer has not finished: %q", out)
			}
			if !strings.Contains(out, "quota exceeded") || strings.Contains(out, "dd-exit=0") {
				return fmt.Errorf("the writer was not stopped by the quota: %q", out)
			}
			return nil
		})
		if phase := p.MustKubectl(t, "get", "pod", "hog", "-o", "jsonpath={.status.phase}"); phase != "Running" {
			t.Fatalf("pod hog is %s, want Running (stopped by the quota, not evicted)", phase)
		}
		hogUID := p.MustKubectl(t, "get", "pod", "hog", "-o", "jsonpath={.metadata.uid}")
		dir := filepath.Join(p.DataDir, "kubelet", "pods", hogUID, "volumes", "kubernetes.io~empty-dir", "scratch")
		if _, ok := mountAt(dir); !ok {
			t.Fatalf("the size-limited emptyDir %s is not a mounted subvolume", dir)
		}
		if fi, err := os.Stat(filepath.Join(dir, "f")); err != nil || fi.Size() > 2<<20 {
			t.Fatalf("the writer's file: %v, %v; want at most about the 1Mi limit", fi, err)
		}
		p.MustKubectl(t, "delete", "pod", "hog", "--wait=true", "--timeout=2m")
		eventually(t, time.Minute, func() error {
			if _, ok := mountAt(dir); ok {
				return fmt.Errorf("%s still mounted", dir)
			}
			return nil
		})
	})

	t.Run("teardown", func(t *testing.T) {
		p.MustKubectl(t, "delete", "pod", "vols", "--wait=true", "--timeout=2m")
		eventually(t, 2*time.Minute, func() error {
			if _, err := os.Stat(podDir); !os.IsNotExist(err) {
				return fmt.Errorf("pod directory %s still there (%v)", podDir, err)
			}
			mps, err := hostops.New().Mounts()
			if err != nil {
				return err
			}
			for _, mp := range mps {
				if strings.HasPrefix(mp.Path, podDir+"/") {
					return fmt.Errorf("%s still mounted", mp.Path)
				}
			}
			return nil
		})
		if b, err := os.ReadFile(filepath.Join(hostDir, "hp", "sub", "f")); err != nil || string(b) != "from-pod\n" {
			t.Fatalf("the hostPath data did not outlive the pod: %q, %v", b, err)
		}
	})
}
