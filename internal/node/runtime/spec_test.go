package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCommand(t *testing.T) {
	img := &imageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"default"}}
	for _, tc := range []struct {
		name       string
		cmd, args  []string
		image      *imageConfig
		want       []string
		wantNoComm bool
	}{
		{name: "image only", image: img, want: []string{"/entry", "default"}},
		{name: "args replace Cmd", args: []string{"a"}, image: img, want: []string{"/entry", "a"}},
		{name: "command replaces Entrypoint and drops Cmd", cmd: []string{"sh"}, image: img, want: []string{"sh"}},
		{name: "command and args", cmd: []string{"sh"}, args: []string{"-c", "x"}, image: img, want: []string{"sh", "-c", "x"}},
		{name: "host image with command", cmd: []string{"sleep", "1"}, want: []string{"sleep", "1"}},
		{name: "host image args only", args: []string{"echo", "x"}, want: []string{"echo", "x"}},
		{name: "host image no command", wantNoComm: true},
		{name: "image with neither", image: &imageConfig{}, wantNoComm: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := command(&runtimeapi.ContainerConfig{Command: tc.cmd, Args: tc.args}, tc.image)
			if tc.wantNoComm {
				if !errors.Is(err, ErrNoCommand) || err.Error() != "no command specified" {
					t.Fatalf("err = %v, want %q", err, "no command specified")
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("command = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	c := &runtimeapi.ContainerConfig{
		Tty: true,
		Envs: []*runtimeapi.KeyValue{
			{Key: "A", Value: []byte("pod")},
			{Key: "PATH", Value: []byte("/pod/bin")},
		},
	}
	got := environment(c, &imageConfig{Env: []string{"A=image", "B=image"}}, "host1")
	want := []string{"PATH=/pod/bin", "HOSTNAME=host1", "TERM=xterm", "A=pod", "B=image"}
	if !slices.Equal(got, want) {
		t.Errorf("environment = %q, want %q", got, want)
	}
}

// mountFor returns the spec's mount at dest.
func mountFor(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestBuildSpecHostImage(t *testing.T) {
	sec := &runtimeapi.LinuxContainerSecurityContext{
		NoNewPrivs:     true,
		ReadonlyRootfs: true,
		Capabilities:   &runtimeapi.Capability{DropCapabilities: []string{"NET_RAW"}, AddCapabilities: []string{"SYS_ADMIN"}},
	}
	c := &runtimeapi.ContainerConfig{
		Command:    []string{"sh", "-c", "x"},
		WorkingDir: "/work",
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/var/lib/v1", Readonly: true},
			{ContainerPath: "/shared", HostPath: "/var/lib/v2", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: sec,
			Resources:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000},
		},
	}
	s, err := buildSpec(specInput{
		Sandbox:     &runtimeapi.PodSandboxConfig{Hostname: "pod1"},
		Container:   c,
		Root:        "/state/b/rootfs",
		CgroupsPath: "/volplane/sb/c",
		User:        specs.User{UID: 1000, GID: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Path != "/state/b/rootfs" || !s.Root.Readonly {
		t.Errorf("root = %+v", s.Root)
	}
	if s.Hostname != "pod1" || s.Process.Cwd != "/work" || !s.Process.NoNewPrivileges || s.Process.User.UID != 1000 {
		t.Errorf("process = %+v hostname %q", s.Process, s.Hostname)
	}
	for _, d := range hostImageDirs {
		m := mountFor(s, d)
		if m == nil || m.Source != d || !slices.Contains(m.Options, "ro") {
			t.Errorf("host image dir %s: %+v", d, m)
		}
	}
	for dest, typ := range map[string]string{"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/tmp": "tmpfs", "/sys": "sysfs"} {
		if m := mountFor(s, dest); m == nil || m.Type != typ {
			t.Errorf("%s: %+v, want type %s", dest, m, typ)
		}
	}
	if m := mountFor(s, "/data"); m == nil || !slices.Equal(m.Options, []string{"rbind", "rprivate", "ro"}) {
		t.Errorf("/data: %+v", m)
	}
	if m := mountFor(s, "/shared"); m == nil || !slices.Equal(m.Options, []string{"rbind", "rslave", "rw"}) {
		t.Errorf("/shared: %+v", m)
	}
	var nss []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		nss = append(nss, ns.Type)
	}
	slices.Sort(nss)
	want := []specs.LinuxNamespaceType{specs.IPCNamespace, specs.MountNamespace, specs.PIDNamespace, specs.UTSNamespace}
	if !slices.Equal(nss, want) {
		t.Errorf("namespaces %v, want %v (no network namespace: the host's)", nss, want)
	}
	caps := s.Process.Capabilities.Bounding
	if slices.Contains(caps, "CAP_NET_RAW") || !slices.Contains(caps, "CAP_SYS_ADMIN") || !slices.Contains(caps, "CAP_CHOWN") {
		t.Errorf("capabilities %v", caps)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("resources %+v %+v", r.Memory, r.CPU)
	}
	if len(r.Devices) != 1 || r.Devices[0].Allow {
		t.Errorf("device rules %+v, want deny all", r.Devices)
	}
	if s.Linux.CgroupsPath != "/volplane/sb/c" || len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Errorf("cgroup %q masked %v readonly %v", s.Linux.CgroupsPath, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestBuildSpecImageRootfsAndPrivileged(t *testing.T) {
	c := &runtimeapi.ContainerConfig{
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Privileged:       true,
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE},
		}},
		Mounts:  []*runtimeapi.Mount{{ContainerPath: "/plugins", HostPath: "/var/lib/k", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}},
		Devices: nil,
	}
	mode := os.FileMode(0o660)
	s, err := buildSpec(specInput{
		Sandbox:   &runtimeapi.PodSandboxConfig{},
		Container: c,
		Image:     image{Name: "app", Rootfs: "/images/app/rootfs", Config: &imageConfig{Entrypoint: []string{"/app"}, WorkingDir: "/srv"}},
		Root:      "/state/b/rootfs",
		Devices:   []device{{Node: specs.LinuxDevice{Path: "/dev/xvda", Type: "b", Major: 7, Minor: 3, FileMode: &mode}, Access: "rw"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Args, []string{"/app"}) || s.Process.Cwd != "/srv" {
		t.Errorf("args %q cwd %q", s.Process.Args, s.Process.Cwd)
	}
	for _, d := range append(hostImageDirs, "/tmp") {
		if mountFor(s, d) != nil {
			t.Errorf("an image rootfs container got the host image's %s", d)
		}
	}
	if m := mountFor(s, "/dev"); m == nil || m.Source != "/dev" {
		t.Errorf("privileged /dev: %+v, want the host's", m)
	}
	if m := mountFor(s, "/plugins"); m == nil || !slices.Contains(m.Options, "rshared") || s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("bidirectional mount: %+v, root propagation %q", m, s.Linux.RootfsPropagation)
	}
	if len(s.Process.Capabilities.Bounding) != len(allCaps) {
		t.Errorf("privileged capabilities: %d, want all %d", len(s.Process.Capabilities.Bounding), len(allCaps))
	}
	if !s.Linux.Resources.Devices[0].Allow || s.Linux.MaskedPaths != nil {
		t.Errorf("privileged: device rules %+v masked %v", s.Linux.Resources.Devices, s.Linux.MaskedPaths)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			t.Error("host PID asked, got a PID namespace")
		}
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/xvda" {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !last.Allow || last.Type != "b" || *last.Major != 7 || *last.Minor != 3 || last.Access != "rw" {
		t.Errorf("device rule %+v", last)
	}
}

func TestBuildSpecRefuses(t *testing.T) {
	for name, c := range map[string]*runtimeapi.ContainerConfig{
		"no command":            {},
		"relative working dir":  {Command: []string{"x"}, WorkingDir: "rel"},
		"relative mount":        {Command: []string{"x"}, Mounts: []*runtimeapi.Mount{{ContainerPath: "rel", HostPath: "/a"}}},
		"unprivileged shared":   {Command: []string{"x"}, Mounts: []*runtimeapi.Mount{{ContainerPath: "/a", HostPath: "/a", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}},
		"unknown capability":    {Command: []string{"x"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}}}},
		"mount without a host ": {Command: []string{"x"}, Mounts: []*runtimeapi.Mount{{ContainerPath: "/a"}}},
	} {
		if _, err := buildSpec(specInput{Sandbox: &runtimeapi.PodSandboxConfig{}, Container: c}); err == nil {
			t.Errorf("%s: built a spec", name)
		}
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
	write("group", "root:x:0:\napp:x:1001:\nvideo:x:44:app\nstaff:x:50:\n")
	i64 := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	for _, tc := range []struct {
		name    string
		sec     *runtimeapi.LinuxContainerSecurityContext
		image   *imageConfig
		want    specs.User
		wantErr bool
	}{
		{name: "default root", want: specs.User{}},
		{name: "run as uid with passwd entry", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, want: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{44}}},
		{name: "run as unknown uid", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(4242)}, want: specs.User{UID: 4242}},
		{name: "run as group and supplemental", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(4242), RunAsGroup: i64(7), SupplementalGroups: []int64{50}}, want: specs.User{UID: 4242, GID: 7, AdditionalGids: []uint32{50}}},
		{name: "username", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "app"}, want: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{44}}},
		{name: "unknown username", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "nobody-here"}, wantErr: true},
		{name: "image user and group names", image: &imageConfig{User: "app:staff"}, want: specs.User{UID: 1000, GID: 50, AdditionalGids: []uint32{44}}},
		{name: "image numeric user", image: &imageConfig{User: "5:6"}, want: specs.User{UID: 5, GID: 6}},
		{name: "image unknown group", image: &imageConfig{User: "app:nogroup"}, wantErr: true},
		{name: "pod overrides image", sec: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(0)}, image: &imageConfig{User: "app"}, want: specs.User{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUser(root, tc.sec, tc.image)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknownUser) {
					t.Fatalf("err = %v, want ErrUnknownUser", err)
				}
				return
			}
			if err != nil || got.UID != tc.want.UID || got.GID != tc.want.GID || !slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
				t.Fatalf("user = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestResolveImage(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{ImagesDir: dir}}
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("busybox/rootfs")
	mk("registry.local_5000_team_app_v1/rootfs")
	mk("broken")
	cfg := `{"config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "User": "1000", "StopSignal": "SIGQUIT"}}`
	if err := os.WriteFile(filepath.Join(dir, "registry.local_5000_team_app_v1", "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rootfs string
		err          bool
	}{
		{name: "busybox", rootfs: filepath.Join(dir, "busybox/rootfs")},
		{name: "busybox:latest", rootfs: filepath.Join(dir, "busybox/rootfs")},
		{name: "registry.local:5000/team/app:v1", rootfs: filepath.Join(dir, "registry.local_5000_team_app_v1/rootfs")},
		{name: "alpine:3.20"}, // host image
		{name: "broken", err: true},
		{name: "", err: true},
	} {
		img, err := r.resolveImage(tc.name)
		if (err != nil) != tc.err || img.Rootfs != tc.rootfs {
			t.Errorf("%q: rootfs %q, err %v; want %q, error %v", tc.name, img.Rootfs, err, tc.rootfs, tc.err)
		}
	}
	img, err := r.resolveImage("registry.local:5000/team/app:v1")
	if err != nil || img.Config == nil || !slices.Equal(img.Config.Entrypoint, []string{"/bin/app"}) || img.Config.User != "1000" {
		t.Fatalf("image config %+v, %v", img.Config, err)
	}
	if got := stopSignal(runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, img.Config); got != "SIGQUIT" {
		t.Errorf("stop signal %q, want the image's SIGQUIT", got)
	}
	if got := stopSignal(runtimeapi.Signal_SIGNAL_SIGINT, img.Config); got != "SIGINT" {
		t.Errorf("stop signal %q, want the pod's SIGINT", got)
	}
	if st, err := r.ImageStatus(t.Context(), &runtimeapi.ImageSpec{Image: "broken"}, false); err != nil || st.Image != nil {
		t.Errorf("ImageStatus(broken) = %v, %v; want no image", st, err)
	}
	if _, err := r.PullImage(t.Context(), &runtimeapi.ImageSpec{Image: "broken"}, nil, nil); err == nil {
		t.Error("PullImage(broken) succeeded")
	}
	if ref, err := r.PullImage(t.Context(), &runtimeapi.ImageSpec{Image: "nginx:1.27"}, nil, nil); err != nil || ref != "nginx:1.27" {
		t.Errorf("PullImage(host image) = %q, %v", ref, err)
	}
	imgs, err := r.ListImages(t.Context(), nil)
	if err != nil || len(imgs) != 2 {
		t.Errorf("ListImages = %v, %v; want the two with a rootfs", imgs, err)
	}
}

func TestCapabilitiesHostLimited(t *testing.T) {
	host := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}
	sc := func(priv bool, add ...string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{Privileged: priv, Capabilities: &runtimeapi.Capability{AddCapabilities: add}}
	}
	for _, tc := range []struct {
		name    string
		sec     *runtimeapi.LinuxContainerSecurityContext
		want    []string
		wantErr bool
	}{
		{name: "privileged gets the host's", sec: sc(true), want: host},
		{name: "ALL gets the host's", sec: sc(false, "ALL"), want: host},
		{name: "defaults the host has", sec: sc(false), want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{name: "add one the host has", sec: sc(false, "net_admin"), want: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}},
		{name: "add one the host lacks", sec: sc(false, "SYS_ADMIN"), wantErr: true},
	} {
		got, err := capabilities(tc.sec, host)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !slices.Equal(got, tc.want)) {
			t.Errorf("%s: %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
