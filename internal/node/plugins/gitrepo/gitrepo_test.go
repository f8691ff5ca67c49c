package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/plugins"
)

func TestRefused(t *testing.T) {
	root := t.TempDir()
	host := fakehost.New()
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Init(&plugins.Host{RootDir: root, Ops: host}); err != nil {
		t.Fatal(err)
	}
	spec := &plugins.Spec{Name: "src", Volume: &corev1.Volume{Name: "src", VolumeSource: corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "https://example.com/x.git"}}}}
	if !p.CanSupport(spec) || p.CanSupport(&plugins.Spec{Volume: &corev1.Volume{}}) {
		t.Fatal("CanSupport does not claim exactly gitRepo volumes")
	}
	pod := &corev1.Pod{}
	pod.UID = types.UID("u1")
	name, err := p.VolumeName(spec, pod)
	if err != nil || name != "kubernetes.io/git-repo/u1-src" {
		t.Errorf("VolumeName = %q, %v", name, err)
	}
	dir := filepath.Join(root, "pods/u1/volumes/kubernetes.io~git-repo/src")
	err = p.SetUp(context.Background(), plugins.SetUpArgs{Spec: spec, Pod: pod, Dir: dir})
	if !errors.Is(err, ErrDisabled) || err.Error() != "git-repo volume plugin has been disabled; if necessary, it may be re-enabled by enabling the feature-gate `GitRepoVolumeDriver`" {
		t.Errorf("SetUp = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("SetUp left a directory: %v", err)
	}
	if len(host.Calls()) != 0 {
		t.Errorf("SetUp did host work: %v", host.Calls())
	}
	if err := p.TearDown(context.Background(), dir); err != nil {
		t.Errorf("TearDown of nothing: %v", err)
	}
}
