package csitest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func proxyClient(t *testing.T, p *Proxy) csi.ControllerClient {
	t.Helper()
	conn, err := grpc.NewClient(p.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return csi.NewControllerClient(conn)
}

func createVolume(ctx context.Context, c csi.ControllerClient, name string) (*csi.CreateVolumeResponse, error) {
	return c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20},
		VolumeCapabilities: []*csi.VolumeCapability{{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}}})
}

// TestProxyForwards: answers and errors come back as the driver gave
// them; a held answer reaches the driver but not a caller that gave up,
// and the next call passes.
func TestProxyForwards(t *testing.T) {
	d := Serve(t, Options{})
	p := ServeProxy(t, filepath.Join(t.TempDir(), "proxy.sock"), d.Endpoint)
	c := proxyClient(t, p)
	ctx := context.Background()

	resp, err := createVolume(ctx, c, "first")
	if err != nil || resp.GetVolume().GetVolumeId() == "" {
		t.Fatalf("CreateVolume through the proxy: %v, %v", resp, err)
	}
	d.Fail("DeleteVolume", codes.FailedPrecondition, "busy")
	_, err = c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId()})
	if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != "busy" {
		t.Fatalf("driver's error through the proxy: %v", err)
	}

	held := p.Hold("CreateVolume")
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := createVolume(hctx, c, "held"); done <- err }()
	<-held
	if _, ok := d.Volumes()["held"]; !ok {
		t.Fatal("the held call did not reach the driver")
	}
	select {
	case err := <-done:
		t.Fatalf("the held answer came back: %v", err)
	default:
	}
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("caller that gave up: %v", err)
	}
	if _, err := createVolume(ctx, c, "held"); err != nil {
		t.Fatalf("the call after the held one: %v", err)
	}
	if got := p.Calls("CreateVolume"); got != 3 {
		t.Fatalf("CreateVolume calls %d, want 3", got)
	}
}
