package csi

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"volplane/internal/csi/kube"
	"volplane/internal/hostops/fakehost"
	"volplane/internal/node/csidrivers"
	"volplane/internal/node/plugins"
)

// TestRetryWhenDriverRegisters: a mount that failed because the driver
// was not registered is retried at once when it registers (Host.Retry
// for that driver's volumes only), not after its backoff.
func TestRetryWhenDriverRegisters(t *testing.T) {
	reg := &csidrivers.Registry{}
	p, err := New(Config{Drivers: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var retries []func(string) bool
	if err := p.Init(&plugins.Host{RootDir: t.TempDir(), NodeName: nodeName, Ops: fakehost.New(),
		Client: fake.NewClientset(attachment(true, "")), Recorder: record.NewFakeRecorder(10), Log: slog.Default(),
		Retry: func(match func(string) bool) { retries = append(retries, match) }}); err != nil {
		t.Fatal(err)
	}
	s := spec(pv())
	path, err := p.DeviceMountPath(s)
	if err != nil {
		t.Fatal(err)
	}
	err = p.MountDevice(context.Background(), s, path)
	if err == nil || !strings.Contains(err.Error(), "not found in the list of registered CSI drivers") {
		t.Fatalf("MountDevice before the driver registered: %v", err)
	}
	reg.Add(csidrivers.Driver{Name: "other.csi.io", Endpoint: "unix:///other"})
	reg.Add(csidrivers.Driver{Name: driverName, Endpoint: "unix:///x"})
	reg.Remove(driverName)
	if len(retries) != 2 {
		t.Fatalf("%d retries, want one per driver registered (none for a removal)", len(retries))
	}
	name, err := p.VolumeName(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		volume string
		want   bool
	}{
		{name, true},
		{string(kube.UniqueVolumeName(driverName, "another-volume")), true},
		{string(kube.UniqueVolumeName(driverName+".x", handle)), false},
		{string(kube.UniqueVolumeName("other.csi.io", handle)), false},
		{"kubernetes.io/empty-dir/" + driverName, false},
	} {
		if got := retries[1](tc.volume); got != tc.want {
			t.Errorf("retry after %s registered selects %s: %v, want %v", driverName, tc.volume, got, tc.want)
		}
	}
	if retries[0](name) {
		t.Errorf("the retry for other.csi.io selects %s", name)
	}
}
