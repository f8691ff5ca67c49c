package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSecurityAndResources(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("settings")

	cfg := containerConfig("limited", "sh", "-c", "id -u; id -g; hostname; if touch /x 2>/dev/null; then echo writable; else echo readonly; fi; echo tmp > /tmp/ok && echo tmp-ok; echo ready; sleep 1000")
	cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	cfg.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
	cfg.Linux.SecurityContext.ReadonlyRootfs = true
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20, CpuShares: 256}
	id := e.run(sb, sbCfg, cfg)
	waitLog(t, e.rt, id, "ready")
	st, _ := e.rt.ContainerStatus(e.ctx, id, false)
	b, _ := os.ReadFile(st.Status.LogPath)
	for _, want := range []string{"F 1000\n", "F 3000\n", "F settings\n", "F readonly\n", "F tmp-ok\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log %q lacks %q", b, want)
		}
	}
	cg := filepath.Join(cgroupRoot, "memory", "volplane", sb, id, "memory.limit_in_bytes")
	if v, ok := readUint(cg); !ok || v != 32<<20 {
		t.Errorf("%s = %d, want %d", cg, v, 32<<20)
	}
	if v, ok := readUint(filepath.Join(cgroupRoot, "cpu", "volplane", sb, id, "cpu.shares")); !ok || v != 256 {
		t.Errorf("cpu.shares = %d, want 256", v)
	}
	// In-place resize: the cgroup, the status and the record follow.
	if err := e.rt.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512},
	}); err != nil {
		t.Fatal(err)
	}
	if v, ok := readUint(cg); !ok || v != 64<<20 {
		t.Errorf("after resize %s = %d, want %d", cg, v, 64<<20)
	}
	if st, _ := e.open().ContainerStatus(e.ctx, id, false); st.Status.GetResources().GetLinux().GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("resources after resize and a restart: %v", st.Status.GetResources())
	}
	stats, err := e.rt.ContainerStats(e.ctx, id)
	if err != nil || stats.GetMemory().GetUsageBytes().GetValue() == 0 || stats.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
		t.Errorf("stats %v, %v: want memory and CPU usage", stats, err)
	}
	if list, err := e.rt.ListContainerStats(e.ctx, nil); err != nil || len(list) != 1 {
		t.Errorf("ListContainerStats = %d entries, %v; want the one running", len(list), err)
	}

	// A container over its memory limit is OOMKilled.
	oom := containerConfig("oom", "sh", "-c", "head -c 500000000 /dev/zero | tail")
	oom.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, oom)); st.Reason != ReasonOOMKilled || st.ExitCode != 137 {
		t.Errorf("over its limit: exit %d reason %q, want 137 OOMKilled", st.ExitCode, st.Reason)
	}

	// Privileged: the host's devices and every capability.
	priv := containerConfig("priv", "sh", "-c", "test -c /dev/loop-control && grep CapEff /proc/self/status")
	priv.Linux.SecurityContext.Privileged = true
	pst := e.waitExited(e.rt, e.run(sb, sbCfg, priv))
	b, _ = os.ReadFile(pst.LogPath)
	if pst.ExitCode != 0 || !strings.Contains(string(b), "CapEff:\t000001ff") {
		t.Errorf("privileged: exit %d log %q", pst.ExitCode, b)
	}
	// Unprivileged: neither.
	plain := containerConfig("plain", "sh", "-c", "test -e /dev/loop-control")
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, plain)); st.ExitCode == 0 {
		t.Error("an unprivileged container sees the host's /dev")
	}

	// A device given by the config.
	dev := containerConfig("dev", "sh", "-c", "test -c /dev/mynull && echo hi > /dev/mynull")
	dev.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rwm"}}
	if st := e.waitExited(e.rt, e.run(sb, sbCfg, dev)); st.ExitCode != 0 {
		t.Errorf("device: exit %d", st.ExitCode)
	}
}

func TestStopCreatedContainer(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("created")
	id, err := e.rt.CreateContainer(e.ctx, sb, containerConfig("c", "sleep", "1000"), sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.ContainerStatus(e.ctx, id, false); st.Status.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("state %v, want CREATED", st.Status.State)
	}
	// A second container of the same name and attempt is refused.
	if _, err := e.rt.CreateContainer(e.ctx, sb, containerConfig("c", "true"), sbCfg); err == nil {
		t.Error("a duplicate name and attempt was accepted")
	}
	if err := e.rt.StopContainer(e.ctx, id, 10); err != nil {
		t.Fatal(err)
	}
	st, _ := e.rt.ContainerStatus(e.ctx, id, false)
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after stop: %v, want EXITED", st.Status.State)
	}
	if err := e.rt.StartContainer(e.ctx, id); err == nil {
		t.Error("started a stopped container")
	}
	// StopPodSandbox then RemovePodSandbox take everything away.
	run := e.run(sb, sbCfg, containerConfig("r", "sleep", "1000"))
	if err := e.rt.StopPodSandbox(e.ctx, sb); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.ContainerStatus(e.ctx, run, false); st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("after StopPodSandbox: %v", st.Status.State)
	}
	if ps, _ := e.rt.PodSandboxStatus(e.ctx, sb, false); ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox %v, want NOTREADY", ps.Status.State)
	}
	if _, err := e.rt.CreateContainer(e.ctx, sb, containerConfig("late", "true"), sbCfg); err == nil {
		t.Error("created a container in a stopped sandbox")
	}
	if err := e.rt.RemovePodSandbox(e.ctx, sb); err != nil {
		t.Fatal(err)
	}
	if cs, _ := e.rt.ListContainers(e.ctx, nil); len(cs) != 0 {
		t.Errorf("containers after RemovePodSandbox: %d", len(cs))
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", "volplane", sb)); err == nil {
		t.Error("the sandbox's cgroup is left")
	}
}

func TestSandboxDNS(t *testing.T) {
	e := newTestEnv(t)
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "dns", Namespace: "default", Uid: "dns-uid"},
		LogDirectory: filepath.Join(e.dir, "logs", "default_dns_dns-uid"),
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local"},
			Options:  []string{"ndots:5"},
		},
	}
	sb, err := e.rt.RunPodSandbox(e.ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	st := e.waitExited(e.rt, e.run(sb, sbCfg, containerConfig("c", "cat", "/etc/resolv.conf")))
	b, _ := os.ReadFile(st.LogPath)
	for _, want := range []string{"F search default.svc.cluster.local svc.cluster.local\n", "F nameserver 10.96.0.10\n", "F options ndots:5\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("resolv.conf in the container: %q lacks %q", b, want)
		}
	}
	if err := e.rt.RemovePodSandbox(e.ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.rt.resolvFile(sb)); !os.IsNotExist(err) {
		t.Errorf("the sandbox's resolv.conf is left: %v", err)
	}
}
