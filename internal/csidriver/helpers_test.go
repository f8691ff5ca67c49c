package csidriver

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver/pool"
	"volplane/internal/hostops/fakehost"
)

const testNode = "node-1"

// newFakeDriver opens a driver on a temporary pool with the fake host:
// the pool lands in image mode (the temporary directory offers no
// quota), every host operation is recorded in memory.
func newFakeDriver(t *testing.T, dir string, host *fakehost.Host) *Driver {
	t.Helper()
	d, err := New(context.Background(), Config{
		NodeID:            testNode,
		Host:              host,
		MaxVolumesPerNode: 3,
		Pool:              pool.Config{Dir: filepath.Join(dir, "pool"), ImageSize: 256 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fakeDriver(t *testing.T) (*Driver, *fakehost.Host) {
	t.Helper()
	h := fakehost.New()
	return newFakeDriver(t, t.TempDir(), h), h
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}
}

var snw = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER

func createReq(name string, size int64, params map[string]string, caps ...*csi.VolumeCapability) *csi.CreateVolumeRequest {
	if len(caps) == 0 {
		caps = []*csi.VolumeCapability{mountCap(snw)}
	}
	return &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: caps, Parameters: params,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size}}
}

func mustCreate(t *testing.T, d *Driver, req *csi.CreateVolumeRequest) *csi.Volume {
	t.Helper()
	resp, err := d.CreateVolume(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", req.GetName(), err)
	}
	return resp.GetVolume()
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %s (%v), want %s", got, err, want)
	}
}

// dirEntries lists a pool subdirectory, to check that failures leave
// nothing behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestMain(m *testing.M) {
	// Unit tests check what the driver returns; its log lines would only
	// bury the failures. Tests that check logging install their own.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
