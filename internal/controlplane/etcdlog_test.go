package controlplane

import (
	"bytes"
	"log/slog"
	"testing"

	"go.uber.org/zap"
)

// TestEtcdLogLevels: etcd's records reach the log at its own default
// level, info, whatever -v says. Its debug records carry the requests it
// applies, every Secret's value among them ("Apply" raftReq=... put
// /registry/secrets/...), which -v 4 used to print.
func TestEtcdLogLevels(t *testing.T) {
	tests := []struct {
		name string
		log  func(*zap.Logger)
		want bool
	}{
		{"debug", func(l *zap.Logger) {
			l.Debug("Apply", zap.String("raftReq", "put /registry/secrets/default/s value:SEKRET"))
		}, false},
		{"info", func(l *zap.Logger) { l.Info("ready to serve client requests") }, true},
		{"warn", func(l *zap.Logger) { l.Warn("slow fdatasync") }, true},
		{"error", func(l *zap.Logger) { l.Error("failed to publish") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			// A logger that takes debug records, as -v 4's does.
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			tc.log(zap.New(&zapToSlog{log: log}))
			if got := buf.Len() > 0; got != tc.want {
				t.Errorf("logged %v (%q), want %v", got, buf.String(), tc.want)
			}
		})
	}
}
