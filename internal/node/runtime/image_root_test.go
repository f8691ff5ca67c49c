package runtime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/hostops/hostopstest"
)

// copyFile copies src (following links) to dst, keeping its mode.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// makeImage builds ImagesDir/<dir>/rootfs holding the host's sh and the
// libraries it needs, an /etc/passwd with user "app", and config.json.
func makeImage(t *testing.T, imagesDir, dir, config string) string {
	t.Helper()
	rootfs := filepath.Join(imagesDir, dir, "rootfs")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, sh, filepath.Join(rootfs, "bin/sh"))
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			copyFile(t, f, filepath.Join(rootfs, f))
		}
	}
	copyFile(t, "/etc/group", filepath.Join(rootfs, "etc/group"))
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\napp:x:1234:1234::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(imagesDir, dir, "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

func TestImageRootfs(t *testing.T) {
	e := newTestEnv(t)
	rootfs := makeImage(t, e.cfg.ImagesDir, "example.com_app_v1",
		`{"config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["exit 9"], "Env": ["FROM_IMAGE=yes"], "WorkingDir": "/work", "User": "app"}}`)
	sb, sbCfg := e.sandbox("image")

	// The image's Entrypoint and Cmd, user and working directory.
	cfg := containerConfig("default")
	cfg.Image.Image = "example.com/app:v1"
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, cfg)); st.ExitCode != 9 {
		t.Errorf("image command: exit %d, want 9", st.ExitCode)
	}
	// Args replace Cmd; the container writes to its own layer only.
	cfg = containerConfig("args")
	cfg.Image.Image = "example.com/app:v1"
	cfg.Args = []string{`echo "$(pwd) $FROM_IMAGE $(id -u 2>/dev/null || echo 1234)"; echo x > /work/new; test -d /usr/lib/x86_64-linux-gnu/security; echo host=$?`}
	st := e.waitExited(e.rt, e.run(sb, sbCfg, cfg))
	if st.ExitCode != 0 {
		t.Fatalf("args: exit %d", st.ExitCode)
	}
	b, _ := os.ReadFile(st.LogPath)
	if !strings.Contains(string(b), "stdout F /work yes 1234") || !strings.Contains(string(b), "host=1") {
		t.Errorf("log %q: want the image's working dir, env and user, and no host /usr", b)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "work/new")); err == nil {
		t.Error("the container wrote into the image's rootfs")
	}
	// Removing the container unmounts its overlay.
	id := st.Id
	if err := e.rt.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if m := hostopstest.MountsUnder(t, e.rt.bundle(id)); len(m) != 0 {
		t.Errorf("mounts left after RemoveContainer: %v", m)
	}
	if _, err := os.Stat(e.rt.bundle(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle left: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	e := newTestEnv(t)
	makeImage(t, e.cfg.ImagesDir, "noentry", `{"config": {}}`)
	if err := os.MkdirAll(filepath.Join(e.cfg.ImagesDir, "norootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	sb, sbCfg := e.sandbox("bad")
	for _, tc := range []struct {
		name, image, text string
		cmd               []string
		user              string
	}{
		{name: "missing command", image: "busybox", cmd: []string{"/no/such/command"}, text: "/no/such/command"},
		{name: "no command", image: "noentry", text: "no command specified"},
		{name: "unknown user", image: "busybox", cmd: []string{"true"}, user: "nobody-at-all", text: "unable to find user"},
		{name: "image dir without rootfs", image: "norootfs", cmd: []string{"true"}, text: "no rootfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := containerConfig(strings.ReplaceAll(tc.name, " ", "-"), tc.cmd...)
			cfg.Image.Image = tc.image
			cfg.Linux.SecurityContext.RunAsUsername = tc.user
			id, err := e.rt.CreateContainer(e.ctx, sb, cfg, sbCfg)
			if err == nil {
				err = e.rt.StartContainer(e.ctx, id)
			}
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want one that says %q", err, tc.text)
			}
			t.Logf("error: %v", err)
		})
	}
	// Nothing is left of the failed containers.
	cs, err := e.rt.ListContainers(e.ctx, nil)
	if err != nil || len(cs) != 0 {
		t.Errorf("containers after failed creates: %v, %v", cs, err)
	}
	if entries, _ := os.ReadDir(e.rt.containerDir()); len(entries) != 0 {
		t.Errorf("bundles left: %v", entries)
	}
	if out, _ := e.rt.runcOutput(e.ctx, "list", "-q"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("runc containers left: %s", out)
	}
	if m := hostopstest.MountsUnder(t, e.rt.containerDir()); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	// An unknown container is gRPC NotFound; removing it is fine.
	if _, err := e.rt.ContainerStatus(e.ctx, "nope", false); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown container: %v", err)
	}
	if err := e.rt.RemoveContainer(e.ctx, "nope"); err != nil {
		t.Errorf("remove of an unknown container: %v", err)
	}
	// The runtime still runs containers.
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, containerConfig("fine", "true"))); st.ExitCode != 0 {
		t.Errorf("after bad input: exit %d", st.ExitCode)
	}
}
