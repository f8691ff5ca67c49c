package csidriver

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
)

func TestMetrics(t *testing.T) {
	d, _ := fakeDriver(t)
	mustCreate(t, d, createReq("a", mib, nil))
	icpt := logInterceptor(slog.New(slog.NewTextHandler(io.Discard, nil)), d.metrics)
	info := &grpc.UnaryServerInfo{FullMethod: "/csi.v1.Controller/DeleteVolume"}
	for i := 0; i < 2; i++ {
		if _, err := icpt(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	d.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`volplane_csi_calls_total{code="OK",method="/csi.v1.Controller/DeleteVolume"} 2`,
		`volplane_csi_objects{kind="dir"} 1`,
		`volplane_csi_pool_bytes{kind="promised"} 1.048576e+06`,
		`volplane_csi_call_duration_seconds_count{method="/csi.v1.Controller/DeleteVolume"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
