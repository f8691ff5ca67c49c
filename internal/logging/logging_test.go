package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
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
		{"benign by pattern", slog.LevelWarn, "Skipping API apps/v1beta2 because it has no resources.", nil, false},
		{"pattern's text must all be there", slog.LevelWarn, "Skipping API apps/v1beta2 because it has no storage.", nil, true},
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

// TestKlog checks klog's printf-style calls, which reach the logger with
// klog's header: each at its own level, the header gone.
func TestKlog(t *testing.T) {
	var buf bytes.Buffer
	Setup(&buf, Options{})
	klog.Infof("synced %d", 3)
	klog.Warningf("disk %s is slow", "sda")
	klog.Errorf("cannot reach %s", "etcd")
	klog.ErrorS(errors.New("boom"), "structured")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="disk sda is slow" component=upstream`,
		`level=ERROR msg="cannot reach etcd" component=upstream`,
		`level=ERROR msg=structured component=upstream err=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "synced") {
		t.Errorf("upstream info shown at the default verbosity:\n%s", out)
	}
}

// TestKlogFatal runs klog.Fatal in a child process: outside a stop it
// logs its reason, runs the AtFatal hook and exits 255 without dumping
// goroutines; during a stop the failing goroutine waits and the process
// exits as its stop decides.
func TestKlogFatal(t *testing.T) {
	if mode := os.Getenv("VOLPLANE_TEST_FATAL"); mode != "" {
		Setup(os.Stderr, Options{})
		AtFatal(func() { fmt.Fprintln(os.Stderr, "hook ran") })
		if mode == "stopping" {
			Stopping()
			go klog.Fatalf("lost the API: %s", "connection refused")
			time.Sleep(300 * time.Millisecond)
			os.Exit(0)
		}
		klog.Fatalf("lost the API: %s", "connection refused")
		return
	}
	run := func(mode string) (string, int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKlogFatal$")
		cmd.Env = append(os.Environ(), "VOLPLANE_TEST_FATAL="+mode)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run("running")
	if code != 255 {
		t.Errorf("exit code %d, want 255; output:\n%s", code, out)
	}
	for _, want := range []string{`level=ERROR msg="lost the API: connection refused" fatal=true`, "hook ran"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "goroutine ") {
		t.Errorf("fatal dumped goroutines:\n%s", out)
	}
	out, code = run("stopping")
	if code != 0 || strings.Contains(out, "hook ran") || strings.Contains(out, "lost the API") {
		t.Errorf("during a stop: exit code %d (want 0), output (want silent):\n%s", code, out)
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"a", "a", true},
		{"a", "ab", false},
		{"a*c", "abc", true},
		{"a*c", "a/b/c", true},
		{"a*c", "abd", false},
		{"*b*", "abc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false},
	} {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
