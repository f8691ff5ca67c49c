package secret

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"volplane/internal/hostops"
	"volplane/internal/hostops/hostopstest"
	"volplane/internal/node/plugins"
)

// TestOnTmpfs needs root: a secret volume is a real tmpfs, owned by the
// fsGroup, and gone after TearDown.
func TestOnTmpfs(t *testing.T) {
	hostopstest.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, root) })

	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", ResourceVersion: "1"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	})
	p := New(nil)
	if err := p.Init(&plugins.Host{RootDir: root, NodeName: "n1", Ops: hostops.New(), Client: client}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid1"}}
	gid := int64(2000)
	args := plugins.SetUpArgs{
		Spec: &plugins.Spec{Name: "creds", Volume: &corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "db", DefaultMode: ptr(int32(0o400)),
		}}}},
		Pod:     pod,
		Dir:     filepath.Join(root, "pods/uid1/volumes/kubernetes.io~secret/creds"),
		FSGroup: &gid,
	}
	for i := 0; i < 2; i++ { // the second SetUp must not mount again
		if err := p.SetUp(ctx, args); err != nil {
			t.Fatal(err)
		}
	}
	if got := hostopstest.FSTypeAt(t, args.Dir); got != "tmpfs" {
		t.Fatalf("secret volume on %q, want tmpfs", got)
	}
	if n := len(hostopstest.MountsUnder(t, args.Dir)); n != 1 {
		t.Errorf("%d mounts at the volume after two SetUps, want 1", n)
	}
	st, err := os.Stat(filepath.Join(args.Dir, "password"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); st.Mode().Perm() != 0o440 || sys.Gid != uint32(gid) {
		t.Errorf("password: mode %v gid %d, want 0440 gid %d", st.Mode(), sys.Gid, gid)
	}
	if b, _ := os.ReadFile(filepath.Join(args.Dir, "password")); string(b) != "s3cret" {
		t.Errorf("password = %q", b)
	}

	if err := p.TearDown(ctx, args.Dir); err != nil {
		t.Fatal(err)
	}
	if m := hostopstest.MountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts left after TearDown: %v", m)
	}
	if _, err := os.Stat(args.Dir); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
	if err := p.TearDown(ctx, args.Dir); err != nil {
		t.Errorf("second TearDown: %v", err)
	}
}

// TestFailedSetUpLeavesNoMount needs root: a payload that cannot be
// written unmounts the tmpfs SetUp mounted.
func TestFailedSetUpLeavesNoMount(t *testing.T) {
	hostopstest.RequireRoot(t)
	root := t.TempDir()
	t.Cleanup(func() { hostopstest.Teardown(t, root) })
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
		Data:       map[string][]byte{"a": []byte("1")},
	})
	p := New(nil)
	if err := p.Init(&plugins.Host{RootDir: root, Ops: hostops.New(), Client: client}); err != nil {
		t.Fatal(err)
	}
	args := plugins.SetUpArgs{
		Spec: &plugins.Spec{Name: "creds", Volume: &corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "db", DefaultMode: ptr(int32(0o400)),
			Items: []corev1.KeyToPath{{Key: "a", Path: "../escape"}}, // the API refuses this; the writer must too
		}}}},
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid1"}},
		Dir: filepath.Join(root, "pods/uid1/volumes/kubernetes.io~secret/creds"),
	}
	if err := p.SetUp(context.Background(), args); err == nil {
		t.Fatal("SetUp wrote a path with ..")
	}
	if m := hostopstest.MountsUnder(t, root); len(m) != 0 {
		t.Errorf("failed SetUp left mounts: %v", m)
	}
	if _, err := os.Stat(filepath.Join(root, "pods/uid1/volumes/kubernetes.io~secret/escape")); !os.IsNotExist(err) {
		t.Errorf("a file escaped the volume: %v", err)
	}
}
