package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrNoCommand is returned by CreateContainer when neither the container
// config nor the image names a command; the text is upstream's.
var ErrNoCommand = errors.New("no command specified")

// hostImageDirs are the host directories the host image shows read-only.
var hostImageDirs = []string{"/bin", "/sbin", "/usr", "/lib", "/lib64", "/etc"}

// defaultPath is the PATH a container gets when neither the image nor the
// pod sets one.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultCaps is the capability set a CRI runtime gives an unprivileged
// container (containerd's and CRI-O's default).
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability the kernel of this release line knows, in
// the order of their numbers; privileged containers and "ALL" get those
// of them the runtime itself holds (hostCaps).
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// defaultMaskedPaths and defaultReadonlyPaths apply when the kubelet sends
// none (it normally sends these same lists).
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// image is what the image rule resolved a container's image to.
type image struct {
	// Name is the image as the pod names it.
	Name string
	// Rootfs is DIR/images/<name>/rootfs, or "" for the host image.
	Rootfs string
	// Config is the image's configuration; nil when it has none.
	Config *imageConfig
}

// imageConfig holds the fields of an OCI image configuration's "config"
// object that a CRI runtime applies.
type imageConfig struct {
	User       string   `json:"User,omitempty"`
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	StopSignal string   `json:"StopSignal,omitempty"`
}

// specInput is everything buildSpec needs; it reads no files.
type specInput struct {
	Sandbox   *runtimeapi.PodSandboxConfig
	Container *runtimeapi.ContainerConfig
	Image     image
	// Root is the directory runc uses as the container's root: an empty
	// directory for the host image, the overlay of the image's rootfs
	// otherwise.
	Root string
	// CgroupsPath is the container's cgroup, relative to the hierarchy
	// roots.
	CgroupsPath string
	// User is the resolved uid, gid and additional gids.
	User specs.User
	// Devices are the config's devices, resolved from their host nodes.
	Devices []device
	// ResolvConf is the sandbox's resolv.conf to mount at
	// /etc/resolv.conf, or "".
	ResolvConf string
	// HostCaps are the capabilities a container may have: those in the
	// runtime's own bounding set; nil means allCaps.
	HostCaps []string
}

// device is a CRI device resolved to the node runc creates and the cgroup
// access it is given.
type device struct {
	Node   specs.LinuxDevice
	Access string
}

// command returns the process arguments the way a CRI runtime derives them
// from the container config and the image: Command replaces Entrypoint,
// Args replaces Cmd, and the image's Cmd is dropped when Command is set.
func command(c *runtimeapi.ContainerConfig, ic *imageConfig) ([]string, error) {
	cmd, args := c.GetCommand(), c.GetArgs()
	if len(cmd) == 0 && ic != nil {
		cmd = ic.Entrypoint
		if len(args) == 0 {
			args = ic.Cmd
		}
	}
	out := append(slices.Clone(cmd), args...)
	if len(out) == 0 {
		return nil, ErrNoCommand
	}
	return out, nil
}

// environment merges the image's Env, a default PATH and the container's
// envs; a later value of a name replaces an earlier one in place.
func environment(c *runtimeapi.ContainerConfig, ic *imageConfig, hostname string) []string {
	var env []string
	index := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			return
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	set(defaultPath)
	if hostname != "" {
		set("HOSTNAME=" + hostname)
	}
	if c.GetTty() {
		set("TERM=xterm")
	}
	if ic != nil {
		for _, kv := range ic.Env {
			set(kv)
		}
	}
	for _, kv := range c.GetEnvs() {
		set(kv.GetKey() + "=" + string(kv.GetValue()))
	}
	return env
}

// propagation maps a CRI mount propagation to runc's option.
func propagation(p runtimeapi.MountPropagation) string {
	switch p {
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave"
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared"
	default:
		return "rprivate"
	}
}

// baseMounts are /proc, /dev, /sys and friends, as every CRI runtime gives
// them; a privileged container sees the host's /dev.
func baseMounts(privileged bool) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if privileged {
		ms = append(ms, specs.Mount{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind", "nosuid", "rprivate"}})
	} else {
		ms = append(ms,
			specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		)
	}
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	if privileged {
		sysOpts = sysOpts[:3]
	}
	ms = append(ms, specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts})
	return ms
}

// buildSpec turns a CRI container config into the OCI runtime spec runc
// runs. It is pure: the image, the user and the paths are resolved by the
// caller.
func buildSpec(in specInput) (*specs.Spec, error) {
	c := in.Container
	ic := in.Image.Config
	args, err := command(c, ic)
	if err != nil {
		return nil, err
	}
	sec := c.GetLinux().GetSecurityContext()
	privileged := sec.GetPrivileged()
	hostname := in.Sandbox.GetHostname()

	cwd := c.GetWorkingDir()
	if cwd == "" && ic != nil {
		cwd = ic.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("working directory %q is not an absolute path", cwd)
	}

	caps, err := capabilities(sec, in.HostCaps)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:        c.GetTty(),
			User:            in.User,
			Args:            args,
			Env:             environment(c, ic, hostname),
			Cwd:             cwd,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: sec.GetNoNewPrivs(),
		},
		Root:     &specs.Root{Path: in.Root, Readonly: sec.GetReadonlyRootfs()},
		Hostname: hostname,
		Mounts:   baseMounts(privileged),
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Resources:   resources(c.GetLinux().GetResources(), privileged),
		},
	}
	if adj := c.GetLinux().GetResources().GetOomScoreAdj(); adj != 0 {
		v := int(adj)
		s.Process.OOMScoreAdj = &v
	}

	// The image's root: the host's system directories read-only, or the
	// image's own rootfs (as s.Root); either way a private /tmp.
	if in.Image.Rootfs == "" {
		for _, d := range hostImageDirs {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: d, Type: "bind", Source: d, Options: []string{"rbind", "ro", "rprivate"}})
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	}

	if in.ResolvConf != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: in.ResolvConf, Options: []string{"rbind", "rprivate", "ro"}})
	}
	for _, m := range c.GetMounts() {
		if !path.IsAbs(m.GetContainerPath()) || m.GetHostPath() == "" {
			return nil, fmt.Errorf("mount %q -> %q: the container path must be absolute and the host path set", m.GetHostPath(), m.GetContainerPath())
		}
		if m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && !privileged {
			return nil, fmt.Errorf("mount %q: Bidirectional mount propagation is available only to privileged containers", m.GetContainerPath())
		}
		opts := []string{"rbind", propagation(m.GetPropagation())}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.GetContainerPath(), Type: "bind", Source: m.GetHostPath(), Options: opts})
		// A mount's propagation works only if the container's root
		// lets it: rshared for Bidirectional (a slave never propagates
		// back), rslave (runc's default) otherwise.
		switch {
		case m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			s.Linux.RootfsPropagation = "rshared"
		case m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && s.Linux.RootfsPropagation == "":
			s.Linux.RootfsPropagation = "rslave"
		}
	}

	ns := sec.GetNamespaceOptions()
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}}
	if ns.GetPid() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if ns.GetIpc() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}

	for _, d := range in.Devices {
		s.Linux.Devices = append(s.Linux.Devices, d.Node)
		major, minor := d.Node.Major, d.Node.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.Node.Type, Major: &major, Minor: &minor, Access: d.Access,
		})
	}

	if !privileged {
		s.Linux.MaskedPaths = defaultMaskedPaths
		if p := sec.GetMaskedPaths(); p != nil {
			s.Linux.MaskedPaths = p
		}
		s.Linux.ReadonlyPaths = defaultReadonlyPaths
		if p := sec.GetReadonlyPaths(); p != nil {
			s.Linux.ReadonlyPaths = p
		}
	}
	if sysctls := in.Sandbox.GetLinux().GetSysctls(); len(sysctls) > 0 {
		s.Linux.Sysctl = sysctls
	}
	return s, nil
}

// capabilities returns the capability set of a container: all the host
// allows for a privileged one, else the default set with the config's
// drops and adds. A capability the host does not hold cannot be added.
func capabilities(sec *runtimeapi.LinuxContainerSecurityContext, host []string) ([]string, error) {
	if host == nil {
		host = allCaps
	}
	if sec.GetPrivileged() {
		return slices.Clone(host), nil
	}
	norm := func(c string) string {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		return c
	}
	caps := slices.DeleteFunc(slices.Clone(defaultCaps), func(c string) bool { return !slices.Contains(host, c) })
	for _, d := range sec.GetCapabilities().GetDropCapabilities() {
		if d = norm(d); d == "ALL" {
			caps = nil
			break
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == d })
	}
	for _, a := range sec.GetCapabilities().GetAddCapabilities() {
		if a = norm(a); a == "ALL" {
			return slices.Clone(host), nil
		}
		if !slices.Contains(allCaps, a) {
			return nil, fmt.Errorf("unknown capability %q", a)
		}
		if !slices.Contains(host, a) {
			return nil, fmt.Errorf("capability %s is not available on this node", a)
		}
		if !slices.Contains(caps, a) {
			caps = append(caps, a)
		}
	}
	return caps, nil
}

// boundingCaps returns the capabilities in this process's bounding set.
func boundingCaps() ([]string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("CapBnd %q: %w", v, err)
			}
			var out []string
			for i, c := range allCaps {
				if mask&(1<<i) != 0 {
					out = append(out, c)
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}

// resources maps the CRI resources to cgroup settings: memory limit, CPU
// shares, quota and period, cpusets, and the device rules (all devices for
// a privileged container, none but runc's defaults otherwise; devices the
// config names are added by the caller).
func resources(r *runtimeapi.LinuxContainerResources, privileged bool) *specs.LinuxResources {
	out := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: privileged, Access: "rwm"}},
	}
	if r == nil {
		return out
	}
	if r.GetMemoryLimitInBytes() > 0 {
		v := r.GetMemoryLimitInBytes()
		out.Memory = &specs.LinuxMemory{Limit: &v}
	}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := uint64(r.GetCpuShares()); v > 0 {
		cpu.Shares = &v
	}
	if v := r.GetCpuQuota(); v > 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.GetCpuPeriod()); v > 0 {
		cpu.Period = &v
	}
	if cpu.Shares != nil || cpu.Quota != nil || cpu.Period != nil || cpu.Cpus != "" || cpu.Mems != "" {
		out.CPU = cpu
	}
	return out
}
