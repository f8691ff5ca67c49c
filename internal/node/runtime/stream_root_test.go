package runtime

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a WriteCloser safe to read while being written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Close() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAttach(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("attach")
	cfg := containerConfig("c", "sh", "-c", "echo ready; read x; echo got $x; echo bye >&2")
	cfg.Stdin = true
	id := e.run(sb, sbCfg, cfg)
	waitLog(t, e.rt, id, "ready")

	pr, pw := io.Pipe()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- e.rt.Streamer().Attach(e.ctx, id, pr, &out, &errOut, false, nil) }()
	// The reply can only come after the input, which travels over the
	// attach connection: no race with attaching.
	if _, err := io.WriteString(pw, "hello\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("attach did not end when the container did")
	}
	pw.Close()
	if out.String() != "got hello\n" || errOut.String() != "bye\n" {
		t.Errorf("attached stdout %q stderr %q", out.String(), errOut.String())
	}
	if st := e.waitExited(e.rt, id); st.ExitCode != 0 {
		t.Errorf("exit %d", st.ExitCode)
	}
	// The log has what the container wrote, attached or not.
	waitLog(t, e.rt, id, "stdout F got hello")
}

func TestPortForward(t *testing.T) {
	e := newTestEnv(t)
	sb, _ := e.sandbox("pf")
	// A "pod" listening on the node's network: pods share it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte(strings.ToUpper(line)))
	}()
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	port := int32(l.Addr().(*net.TCPAddr).Port)
	go func() { done <- e.rt.Streamer().PortForward(e.ctx, sb, port, server) }()
	if _, err := client.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || got != "PING\n" {
		t.Fatalf("forwarded reply %q, %v", got, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("port-forward: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward did not end when the pod closed")
	}
	if err := e.rt.Streamer().PortForward(e.ctx, "no-such-sandbox", port, server); err == nil {
		t.Error("port-forward to an unknown sandbox succeeded")
	}
}

func TestExecTTYResize(t *testing.T) {
	e := newTestEnv(t)
	sb, sbCfg := e.sandbox("resize")
	id := e.run(sb, sbCfg, containerConfig("c", "sleep", "1000"))
	pr, pw := io.Pipe()
	var out syncBuffer
	resize := make(chan remoteSize)
	done := make(chan error, 1)
	go func() { done <- e.rt.Streamer().Exec(e.ctx, id, []string{"sh"}, pr, &out, nil, true, resize) }()
	// The size reaches the container's terminal through runc's SIGWINCH
	// handler, asynchronously: ask until it shows.
	waitSize := func(text string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), text) {
			if time.Now().After(deadline) {
				t.Fatalf("terminal never showed %q: %q", text, out.String())
			}
			_, _ = io.WriteString(pw, "stty size\n")
			time.Sleep(100 * time.Millisecond)
		}
	}
	resize <- remoteSize{Width: 100, Height: 30}
	waitSize("30 100")
	resize <- remoteSize{Width: 90, Height: 20}
	waitSize("20 90")
	_, _ = io.WriteString(pw, "exit 0\n")
	if err := <-done; err != nil {
		t.Errorf("exec: %v", err)
	}
	close(resize)
	pw.Close()
}
