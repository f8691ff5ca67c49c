package gitrepo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
)

// makeRepo makes a repository with two commits of file "f" and returns
// its path and the first commit.
func makeRepo(t *testing.T) (string, string) {
	t.Helper()
	repo := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	for _, v := range []string{"v1", "v2"} {
		if err := os.WriteFile(filepath.Join(repo, "f"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		run("add", "f")
		run("commit", "-q", "-m", v)
	}
	return repo, run("rev-parse", "HEAD~1")
}

func cloneEnv(t *testing.T, cfg Config) (*Plugin, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := p.Init(&plugins.Host{RootDir: root, Ops: fakehost.New()}); err != nil {
		t.Fatal(err)
	}
	return p, root
}

func gitArgs(root string, src corev1.GitRepoVolumeSource) plugins.SetUpArgs {
	return plugins.SetUpArgs{
		Spec: &plugins.Spec{Name: "src", Volume: &corev1.Volume{Name: "src", VolumeSource: corev1.VolumeSource{GitRepo: &src}}},
		Pod:  &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}},
		Dir:  filepath.Join(root, "pods/u1/volumes/kubernetes.io~git-repo/src"),
	}
}

func TestCloneAtRevision(t *testing.T) {
	repo, first := makeRepo(t)
	p, root := cloneEnv(t, Config{Allow: true, Protocols: []string{"file"}})
	ctx := context.Background()
	args := gitArgs(root, corev1.GitRepoVolumeSource{Repository: repo, Revision: first, Directory: "code"})
	if err := p.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(args.Dir, "code", "f")
	if b, _ := os.ReadFile(f); string(b) != "v1" {
		t.Fatalf("f = %q at revision %s, want v1", b, first)
	}
	// Ready: a second SetUp leaves the pod's changes alone.
	if err := os.WriteFile(f, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "edited" {
		t.Errorf("second SetUp cloned again: f = %q", b)
	}
	if err := p.TearDown(ctx, args.Dir); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{args.Dir, filepath.Join(root, "pods/u1/plugins/kubernetes.io~git-repo/src")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left after TearDown: %v", gone, err)
		}
	}
}

func TestCloneIntoVolumeItself(t *testing.T) {
	repo, _ := makeRepo(t)
	p, root := cloneEnv(t, Config{Allow: true, Protocols: []string{"file"}})
	args := gitArgs(root, corev1.GitRepoVolumeSource{Repository: repo, Directory: "."})
	if err := p.SetUp(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(args.Dir, "f")); string(b) != "v2" {
		t.Errorf("f = %q, want v2 (HEAD)", b)
	}
}

func TestCloneRefusals(t *testing.T) {
	repo, _ := makeRepo(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		src  corev1.GitRepoVolumeSource
		err  string
	}{
		{"local repositories by default", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: repo}, "transport 'file' not allowed"},
		{"option as repository", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: "--upload-pack=touch /tmp/x"}, "is an invalid value for repository"},
		{"option as revision", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: repo, Revision: "-b"}, "is an invalid value for revision"},
		{"directory with a separator", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: repo, Directory: "a/b"}, "must not contain a directory separator"},
		{"directory ..", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: repo, Directory: ".."}, "must not contain a directory separator"},
		{"directory ../x", Config{Allow: true}, corev1.GitRepoVolumeSource{Repository: repo, Directory: "../x"}, "must not contain a directory separator"},
		{"revision that does not exist", Config{Allow: true, Protocols: []string{"file"}}, corev1.GitRepoVolumeSource{Repository: repo, Revision: "nope"}, "failed to exec 'git checkout nope'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, root := cloneEnv(t, tc.cfg)
			args := gitArgs(root, tc.src)
			err := p.SetUp(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("SetUp = %v, want %q", err, tc.err)
			}
			if _, err := os.Stat(filepath.Join(root, "pods/u1/plugins/kubernetes.io~git-repo/src/ready")); !os.IsNotExist(err) {
				t.Errorf("a failed SetUp marked the volume ready: %v", err)
			}
			if _, err := os.Stat(filepath.Join(root, "pods/u1/volumes/kubernetes.io~git-repo/x")); !os.IsNotExist(err) {
				t.Errorf("a clone escaped the volume: %v", err)
			}
		})
	}
	if _, err := New(Config{Protocols: []string{"ext"}}); err == nil {
		t.Error("the ext protocol was accepted")
	}
}
