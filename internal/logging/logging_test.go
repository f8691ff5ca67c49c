package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestUpstreamFilter(t *testing.T) {
	kubeSystem := errors.New(`namespaces "kube-system" not found`)
	tests := []struct {
		name  string
		level slog.Level
		msg   string
		args  []any
		shown bool
	}{
		{"upstream info is dropped", slog.LevelInfo, "Starting controller", nil, false},
		{"upstream warning is shown", slog.LevelWarn, "slow request", nil, true},
		{"upstream error is shown", slog.LevelError, "Failed to ensure lease exists, will retry", []any{"err", errors.New("etcdserver: request timed out")}, true},
		{"benign by message", slog.LevelError, "The manifest file is empty, ignoring.", nil, false},
		{"benign by message and err", slog.LevelError, "Failed to ensure lease exists, will retry", []any{"err", kubeSystem, "interval", "200ms"}, false},
		{"benign message without its err", slog.LevelError, "Error while syncing ConfigMap", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(&upstreamHandler{inner: slog.NewTextHandler(&buf, nil)})
			l.Log(t.Context(), tt.level, tt.msg, tt.args...)
			if shown := buf.Len() > 0; shown != tt.shown {
				t.Errorf("shown = %v, want %v (output %q)", shown, tt.shown, buf.String())
			}
		})
	}
}

func TestUpstreamFilterVerbose(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(&upstreamHandler{inner: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), verbose: true})
	l.Error("The manifest file is empty, ignoring.")
	if !strings.Contains(buf.String(), "level=DEBUG") {
		t.Errorf("with -v a benign error is shown at debug level, got %q", buf.String())
	}
}
