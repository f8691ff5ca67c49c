package runtime

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// streamerExecutor serves a Streamer the way the kubelet API does.
type streamerExecutor struct {
	s  *Streamer
	id string
}

func (x streamerExecutor) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize, _ time.Duration) error {
	return x.s.Exec(ctx, x.id, cmd, in, out, errw, tty, resize)
}

// fixedSize is a TerminalSizeQueue that reports one size, then none.
type fixedSize struct{ sent bool }

func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.sent {
		return nil
	}
	f.sent = true
	return &remotecommand.TerminalSize{Width: 77, Height: 11}
}

// TestExecOverSPDY runs what `kubectl exec -it` runs: client-go's SPDY
// executor against cri-streaming's server over this runtime's Streamer.
func TestExecOverSPDY(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("spdy")
	id := e.run(sb, sbCfg, containerConfig("c", "sleep", "1000"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommandserver.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommandserver.ServeExec(w, r, streamerExecutor{s: e.rt.Streamer(), id: id}, "pod", "uid", "c",
			r.URL.Query()["command"], opts, time.Minute, 30*time.Second, remotecommandserver.SupportedStreamingProtocols)
	}))
	defer srv.Close()

	// stderr, when not a terminal, goes to its own writer: the two
	// streams are separate and their order between them is not kept.
	var stderr strings.Builder
	run := func(cmd []string, tty bool, stdin string) (string, error) {
		u, _ := url.Parse(srv.URL)
		q := url.Values{"command": cmd, corev1.ExecStdoutParam: {"1"}, corev1.ExecStdinParam: {"1"}}
		if tty {
			q.Set(corev1.ExecTTYParam, "1")
		} else {
			q.Set(corev1.ExecStderrParam, "1")
		}
		u.RawQuery = q.Encode()
		ex, err := remotecommand.NewSPDYExecutor(&restclient.Config{Host: srv.URL}, http.MethodPost, u)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		opts := remotecommand.StreamOptions{Stdin: strings.NewReader(stdin), Stdout: &out, Tty: tty}
		if tty {
			opts.TerminalSizeQueue = &fixedSize{}
		} else {
			opts.Stderr = &stderr
		}
		err = ex.StreamWithContext(e.ctx, opts)
		return out.String(), err
	}

	// runc sizes the container's console just after the process starts:
	// give it that moment before asking (see TestExec's tty case).
	out, err := run([]string{"sh"}, true, "sleep 1; stty size; exit 3\n")
	var ee clientexec.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
		t.Errorf("tty exec: %v (output %q), want exit code 3", err, out)
	}
	if !strings.Contains(out, "11 77") {
		t.Errorf("tty output %q lacks the size 11 77", out)
	}
	out, err = run([]string{"sh", "-c", "cat; echo err >&2"}, false, "piped\n")
	if err != nil || out != "piped\n" || stderr.String() != "err\n" {
		t.Errorf("exec with pipes: stdout %q, stderr %q, %v", out, stderr.String(), err)
	}
}
