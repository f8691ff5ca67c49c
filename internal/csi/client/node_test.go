package client_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"volplane/internal/csi/client"
	"volplane/internal/csi/csitest"
	"volplane/internal/logging"
)

func TestNodeCalls(t *testing.T) {
	n := csitest.ServeNode(t, csitest.NodeOptions{SingleNodeMultiWriter: true, VolumeMountGroup: true})
	c, err := client.New(client.Config{Endpoint: n.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	caps, err := c.NodeGetCapabilities(ctx)
	if want := (client.NodeCapabilities{StageUnstage: true, GetVolumeStats: true, SingleNodeMultiWriter: true, VolumeMountGroup: true}); err != nil || caps != want {
		t.Fatalf("NodeGetCapabilities = %+v, %v; want %+v", caps, err, want)
	}
	dir := t.TempDir()
	stage := &client.NodeStageRequest{VolumeID: "v1", StagingPath: dir, PublishContext: map[string]string{"dev": "x"},
		Capability: client.Capability{FSType: "ext4", MountFlags: []string{"noatime"}, AccessMode: client.SingleNodeWriter, VolumeMountGroup: "1000"},
		Secrets:    map[string]string{"password": "s3cret"}, Context: map[string]string{"a": "b"}}
	if err := c.NodeStageVolume(ctx, stage); err != nil {
		t.Fatal(err)
	}
	got := n.LastStage()
	if got.GetStagingTargetPath() != dir || got.GetPublishContext()["dev"] != "x" || got.GetSecrets()["password"] != "s3cret" ||
		got.GetVolumeContext()["a"] != "b" || got.GetVolumeCapability().GetMount().GetFsType() != "ext4" ||
		got.GetVolumeCapability().GetMount().GetVolumeMountGroup() != "1000" {
		t.Fatalf("stage request = %v", got)
	}
	target := filepath.Join(dir, "..", filepath.Base(dir)+"-target")
	pub := &client.NodePublishRequest{VolumeID: "v1", StagingPath: dir, TargetPath: target, ReadOnly: true,
		Capability: client.Capability{AccessMode: client.SingleNodeWriter}}
	if err := c.NodePublishVolume(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if p := n.LastPublish(); !p.GetReadonly() || p.GetTargetPath() != target || p.GetStagingTargetPath() != dir {
		t.Fatalf("publish request = %v", p)
	}
	st, err := c.NodeGetVolumeStats(ctx, "v1", target, dir)
	if err != nil || st.TotalBytes != 1000 || st.UsedInodes != 10 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	if err := c.NodeUnpublishVolume(ctx, "v1", target); err != nil {
		t.Fatal(err)
	}
	if err := c.NodeUnstageVolume(ctx, "v1", dir); err != nil {
		t.Fatal(err)
	}
	if len(n.Staged())+len(n.Published()) != 0 {
		t.Fatalf("left staged %v, published %v", n.Staged(), n.Published())
	}
	n.Fail("NodeStageVolume", codes.ResourceExhausted, "too many")
	err = c.NodeStageVolume(ctx, stage)
	if client.Code(err) != codes.ResourceExhausted {
		t.Fatalf("stage error %v: code %v, want ResourceExhausted", err, client.Code(err))
	}
}

func TestNodeRequestValidate(t *testing.T) {
	good := client.Capability{AccessMode: client.SingleNodeWriter}
	for name, err := range map[string]error{
		"stage without ID":     (&client.NodeStageRequest{StagingPath: "/s", Capability: good}).Validate(),
		"stage without path":   (&client.NodeStageRequest{VolumeID: "v", Capability: good}).Validate(),
		"stage bad mode":       (&client.NodeStageRequest{VolumeID: "v", StagingPath: "/s"}).Validate(),
		"publish without path": (&client.NodePublishRequest{VolumeID: "v", Capability: good}).Validate(),
		"block with fs group":  client.Capability{Block: true, VolumeMountGroup: "1", AccessMode: client.SingleNodeWriter}.Validate(),
		"publish without ID":   (&client.NodePublishRequest{TargetPath: "/t", Capability: good}).Validate(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (&client.NodePublishRequest{VolumeID: "v", TargetPath: "/t", Capability: good}).Validate(); err != nil {
		t.Errorf("good publish request: %v", err)
	}
}

func TestNodeSecretsNotLogged(t *testing.T) {
	n := csitest.ServeNode(t, csitest.NodeOptions{})
	c, err := client.New(client.Config{Endpoint: n.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var buf bytes.Buffer
	ctx := logging.NewContext(context.Background(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	secrets := map[string]string{"key": "s3cret"}
	stage := &client.NodeStageRequest{VolumeID: "v", StagingPath: t.TempDir(), Secrets: secrets,
		Capability: client.Capability{AccessMode: client.SingleNodeWriter}}
	if err := c.NodeStageVolume(ctx, stage); err != nil {
		t.Fatal(err)
	}
	pub := &client.NodePublishRequest{VolumeID: "v", StagingPath: stage.StagingPath, TargetPath: t.TempDir() + "/t",
		Secrets: secrets, Capability: stage.Capability}
	if err := c.NodePublishVolume(ctx, pub); err != nil {
		t.Fatal(err)
	}
	logging.FromContext(ctx).Debug("requests", "stage", stage, "publish", pub)
	if !strings.Contains(buf.String(), "NodePublishVolume") || !strings.Contains(buf.String(), "key") || strings.Contains(buf.String(), "s3cret") {
		t.Errorf("log:\n%s", buf.String())
	}
}
