package csidriver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStripSecrets(t *testing.T) {
	req := &csi.NodeStageVolumeRequest{VolumeId: "v", Secrets: map[string]string{"password": "hunter2"},
		VolumeContext: map[string]string{"k": "visible"}}
	out := stripSecrets(req).(*csi.NodeStageVolumeRequest)
	if out.GetSecrets()["password"] != strippedValue {
		t.Fatalf("secret not stripped: %v", out.GetSecrets())
	}
	if out.GetVolumeContext()["k"] != "visible" || out.GetVolumeId() != "v" {
		t.Fatalf("other fields changed: %v", out)
	}
	if req.GetSecrets()["password"] != "hunter2" {
		t.Fatal("stripping changed the request itself")
	}
}

func TestLogInterceptor(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	icpt := logInterceptor(log, nil)
	info := &grpc.UnaryServerInfo{FullMethod: "/csi.v1.Controller/CreateVolume"}
	req := &csi.CreateVolumeRequest{Name: "pvc", Secrets: map[string]string{"token": "hunter2"}}

	_, err := icpt(context.Background(), req, info, func(ctx context.Context, _ any) (any, error) {
		return nil, errors.New("plain failure")
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("an error without a code must become Internal, got %v", err)
	}
	_, err = icpt(context.Background(), req, info, func(ctx context.Context, _ any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("a panic must become Internal, got %v", err)
	}
	_, err = icpt(context.Background(), req, info, func(ctx context.Context, _ any) (any, error) {
		return nil, errorf(codes.NotFound, "no such volume")
	})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("the handler's code must be kept, got %v", err)
	}
	logged := buf.String()
	if strings.Contains(logged, "hunter2") {
		t.Fatalf("secret in the log:\n%s", logged)
	}
	for _, want := range []string{"RPC failed", "RPC refused", "panic in RPC handler", strippedValue} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q:\n%s", want, logged)
		}
	}
}
