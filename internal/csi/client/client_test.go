package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
	"volplane/internal/logging"
)

func newClient(t *testing.T, d *csitest.Driver, timeout time.Duration) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: d.Endpoint, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		ok       bool
	}{
		{"unix:///run/csi.sock", true},
		{"unix:/run/csi.sock", true},
		{"/run/csi.sock", true},
		{"tcp://127.0.0.1:1", false},
		{"unix://relative.sock", false},
		{"", false},
	} {
		cfg := client.Config{Endpoint: tc.endpoint}
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.endpoint, err, tc.ok)
		}
		if tc.ok && cfg.Timeout != client.DefaultTimeout {
			t.Errorf("%q: timeout %v", tc.endpoint, cfg.Timeout)
		}
	}
}

func TestIdentityAndCapabilities(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{Name: "a.example.com", NoCapacity: true})
	c := newClient(t, d, 0)
	ctx := context.Background()
	info, err := c.PluginInfo(ctx)
	if err != nil || info.Name != "a.example.com" {
		t.Fatalf("PluginInfo = %+v, %v", info, err)
	}
	caps, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := client.Capabilities{ControllerService: true, Topology: true, CreateDelete: true, PublishUnpublish: true}
	if caps != want {
		t.Errorf("capabilities %+v, want %+v", caps, want)
	}
	if ready, err := c.Probe(ctx); err != nil || !ready {
		t.Errorf("Probe = %v, %v", ready, err)
	}
}

func TestCreateVolumeIdempotentAndErrors(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{Capacity: 10 << 30})
	c := newClient(t, d, 0)
	ctx := context.Background()
	req := &client.CreateVolumeRequest{
		Name: "pvc-1", RequiredBytes: 1 << 30,
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter, FSType: "ext4"}},
		Secrets:      map[string]string{"password": "s3cret"},
		Requisite:    []client.Topology{{csitest.TopologyKey: "a"}},
	}
	v1, err := c.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.CreateVolume(ctx, req)
	if err != nil || v2.ID != v1.ID {
		t.Fatalf("second CreateVolume = %+v, %v; want volume %s", v2, err, v1.ID)
	}
	if got := len(d.Volumes()); got != 1 {
		t.Errorf("%d volumes, want 1", got)
	}
	if v1.AccessibleTopology[0][csitest.TopologyKey] != "a" || d.Volumes()["pvc-1"].Secrets["password"] != "s3cret" {
		t.Errorf("topology %v or secrets not passed", v1.AccessibleTopology)
	}

	big := *req
	big.Name, big.RequiredBytes = "pvc-2", 20<<30
	_, err = c.CreateVolume(ctx, &big)
	if client.Code(err) != codes.ResourceExhausted {
		t.Errorf("code %v, want ResourceExhausted (%v)", client.Code(err), err)
	}
	var ce *client.CallError
	if !errors.As(err, &ce) || ce.Method != "CreateVolume" || !strings.HasPrefix(err.Error(), "rpc error: code = ResourceExhausted") {
		t.Errorf("error %q does not quote the status of CreateVolume", err)
	}
	wrapped := errors.Join(errors.New("outer"), err)
	if client.Code(wrapped) != codes.ResourceExhausted {
		t.Errorf("wrapped code %v", client.Code(wrapped))
	}

	if err := c.DeleteVolume(ctx, v1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx, v1.ID, nil); err != nil {
		t.Errorf("deleting a deleted volume: %v", err)
	}
}

func TestValidateBeforeCall(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{})
	c := newClient(t, d, 0)
	ctx := context.Background()
	for name, req := range map[string]*client.CreateVolumeRequest{
		"no name":       {Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}},
		"no capability": {Name: "x"},
		"bad mode":      {Name: "x", Capabilities: []client.Capability{{AccessMode: 99}}},
		"block fstype":  {Name: "x", Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter, Block: true, FSType: "xfs"}}},
		"bad range":     {Name: "x", RequiredBytes: 10, LimitBytes: 5, Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}},
	} {
		if _, err := c.CreateVolume(ctx, req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := c.ControllerPublish(ctx, &client.PublishRequest{VolumeID: "v"}); err == nil {
		t.Error("publish without node: no error")
	}
	if n := d.Calls("CreateVolume") + d.Calls("ControllerPublishVolume"); n != 0 {
		t.Errorf("invalid requests reached the driver %d times", n)
	}
}

func TestTimeoutIsDeadlineExceeded(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{})
	c := newClient(t, d, time.Nanosecond)
	_, err := c.PluginInfo(context.Background())
	if client.Code(err) != codes.DeadlineExceeded {
		t.Errorf("code %v (%v), want DeadlineExceeded", client.Code(err), err)
	}
}

func TestPublishAndCapacity(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{Capacity: 8 << 30, MaxVolumeSize: 4 << 30})
	c := newClient(t, d, 0)
	ctx := context.Background()
	v, err := c.CreateVolume(ctx, &client.CreateVolumeRequest{Name: "a", RequiredBytes: 1 << 30,
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := c.ControllerPublish(ctx, &client.PublishRequest{VolumeID: v.ID, NodeID: "n1",
		Capability: client.Capability{AccessMode: client.SingleNodeWriter}})
	if err != nil || pc["device"] == "" {
		t.Fatalf("publish = %v, %v", pc, err)
	}
	if err := c.ControllerUnpublish(ctx, v.ID, "n1", nil); err != nil || len(d.Published(v.ID)) != 0 {
		t.Errorf("unpublish: %v, still on %v", err, d.Published(v.ID))
	}
	capy, err := c.GetCapacity(ctx, &client.CapacityRequest{Topology: client.Topology{csitest.TopologyKey: "a"}})
	if err != nil || capy.AvailableBytes != 7<<30 || capy.MaximumVolumeSize != 4<<30 {
		t.Errorf("capacity %+v, %v", capy, err)
	}
}

func TestSecretsNotLogged(t *testing.T) {
	d := csitest.Serve(t, csitest.Options{})
	c := newClient(t, d, 0)
	var buf bytes.Buffer
	ctx := logging.NewContext(context.Background(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	req := &client.CreateVolumeRequest{Name: "a", Secrets: map[string]string{"key": "s3cret"},
		Capabilities: []client.Capability{{AccessMode: client.SingleNodeWriter}}}
	if _, err := c.CreateVolume(ctx, req); err != nil {
		t.Fatal(err)
	}
	logging.FromContext(ctx).Debug("request", "req", req)
	if !strings.Contains(buf.String(), "CreateVolume") || strings.Contains(buf.String(), "s3cret") {
		t.Errorf("log:\n%s", buf.String())
	}
}
