package projected

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/plugins"
)

// TestKubeAPIAccessOnTmpfs needs root: the token lands on a real tmpfs at
// the pod volume directory, never on the disk below it, and TearDown
// leaves nothing mounted.
func TestKubeAPIAccessOnTmpfs(t *testing.T) {
	hostopstest.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "shop"}, Data: map[string]string{"ca.crt": "CA"}})
	t.Cleanup(func() { hostopstest.Teardown(t, e.root) })
	p := New(Config{Objects: e.plugin.cfg.Objects, Tokens: e.plugin.cfg.Tokens})
	if err := p.Init(&plugins.Host{RootDir: e.root, NodeName: "n1", Ops: hostops.New(), Client: e.client}); err != nil {
		t.Fatal(err)
	}
	gid := int64(3000)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	args := setUpArgs(e.root, kubeAPIAccess(), pod)
	args.FSGroup = &gid
	if err := p.SetUp(ctx, args); err != nil {
		t.Fatal(err)
	}
	mps := hostopstest.MountsUnder(t, args.Dir)
	if len(mps) != 1 || mps[0] != args.Dir {
		t.Fatalf("mounts at the volume: %v", mps)
	}
	var fstype string
	all, _ := hostops.New().Mounts()
	for _, m := range all {
		if m.Path == args.Dir {
			fstype = m.FSType
		}
	}
	if fstype != "tmpfs" {
		t.Fatalf("volume on %q, want tmpfs", fstype)
	}
	st, err := os.Stat(filepath.Join(args.Dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("token mode %v with an fsGroup, want 0640", st.Mode())
	}
	if err := p.TearDown(ctx, args.Dir); err != nil {
		t.Fatal(err)
	}
	if m := hostopstest.MountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("mounts after TearDown: %v", m)
	}
	// Nothing of the token reached the disk under the mount point.
	if _, err := os.Stat(args.Dir); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
}
