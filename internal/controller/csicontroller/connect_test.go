package csicontroller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
)

// Connect waits for a driver as long as its context lasts, however many
// attempts fail (a driver started long after the controller manager), and
// then returns a working client; cancelled, it quotes the last error.
func TestConnectWaitsForTheDriver(t *testing.T) {
	saved := probeBackoff
	probeBackoff.initial, probeBackoff.max = time.Millisecond, 2*time.Millisecond
	t.Cleanup(func() { probeBackoff = saved })

	d := csitest.Serve(t, csitest.Options{Name: "late.csi.volplane.io"})
	d.Fail("GetPluginInfo", codes.Unavailable, "not up yet")
	type result struct {
		cli  *client.Client
		info client.PluginInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		cli, info, _, err := Connect(context.Background(), client.Config{Endpoint: d.Endpoint})
		done <- result{cli, info, err}
	}()
	// Far more failed attempts than a capped backoff with a step limit
	// allows.
	for d.Calls("GetPluginInfo") < 50 {
		select {
		case r := <-done:
			t.Fatalf("Connect returned while the driver was failing: %+v", r)
		case <-time.After(time.Millisecond):
		}
	}
	d.Fail("GetPluginInfo", codes.OK, "")
	r := <-done
	if r.err != nil || r.info.Name != "late.csi.volplane.io" {
		t.Fatalf("Connect: %+v", r)
	}
	defer r.cli.Close()
	if _, err := r.cli.Capabilities(context.Background()); err != nil {
		t.Errorf("the returned client does not work: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	d.Fail("Probe", codes.Internal, "disk on fire")
	go func() {
		for d.Calls("Probe") < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, _, _, err := Connect(ctx, client.Config{Endpoint: d.Endpoint})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled Connect: %v, want the last error and the cancellation", err)
	}
}

// A socket that does not exist yet when Connect starts is found once it
// appears.
func TestConnectFindsASocketThatAppearsLate(t *testing.T) {
	saved := probeBackoff
	probeBackoff.initial, probeBackoff.max = time.Millisecond, 2*time.Millisecond
	t.Cleanup(func() { probeBackoff = saved })

	d := csitest.Serve(t, csitest.Options{})
	real := strings.TrimPrefix(d.Endpoint, "unix://")
	link := filepath.Join(t.TempDir(), "late.sock")
	done := make(chan error, 1)
	go func() {
		cli, _, _, err := Connect(context.Background(), client.Config{Endpoint: "unix://" + link})
		if err == nil {
			cli.Close()
		}
		done <- err
	}()
	// Let a few attempts fail on the missing socket, then make it appear.
	time.Sleep(20 * time.Millisecond)
	if d.Calls("GetPluginInfo") != 0 {
		t.Fatal("the driver was called through a socket that does not exist")
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
