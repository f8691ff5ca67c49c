package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// conmon's attach protocol: each packet it sends starts with the stream
// it came from; what the client sends is the container's stdin.
const (
	attachStdout = 2
	attachStderr = 3
	// attachBuf is conmon's STDIO_BUF_SIZE plus the stream byte.
	attachBuf = 8192 + 1
)

// dialBundle connects to a unix socket in container id's bundle through
// /proc/self/fd, so the bundle's path length does not matter.
func (r *Runtime) dialBundle(id, name, network string) (*net.UnixConn, error) {
	dir, err := os.OpenFile(r.bundle(id), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	p := filepath.Join("/proc/self/fd", strconv.Itoa(int(dir.Fd())), name)
	return net.DialUnix(network, nil, &net.UnixAddr{Name: p, Net: network})
}

// Attach implements streaming.Runtime: it joins the container's own
// stdio through conmon's attach socket; resizes go to conmon's control
// fifo. It returns when the container's output ends or ctx does.
func (s *Streamer) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	r := s.r
	c, err := r.running(id)
	if err != nil {
		return err
	}
	if in != nil && !c.Config.GetStdin() {
		return status.Errorf(codes.FailedPrecondition, "container %s was not created with stdin", id)
	}
	conn, err := r.dialBundle(id, "attach", "unixpacket")
	if err != nil {
		return fmt.Errorf("attach to %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if tty && resize != nil {
		go func() {
			ctl, err := os.OpenFile(filepath.Join(r.bundle(id), "ctl"), os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer ctl.Close()
			for size := range resize {
				_, _ = fmt.Fprintf(ctl, "1 %d %d\n", size.Height, size.Width)
			}
		}()
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(conn, in)
			if c.Config.GetStdinOnce() && !tty {
				_ = conn.CloseWrite()
			}
		}()
	}
	buf := make([]byte, attachBuf)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			var w io.Writer
			switch buf[0] {
			case attachStdout:
				w = out
			case attachStderr:
				w = errw
			}
			if w != nil {
				if _, werr := w.Write(buf[1:n]); werr != nil {
					return werr
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// PortForward implements streaming.Runtime. Pods share the node's
// network, so the pod's port is the node's loopback port.
func (s *Streamer) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	s.r.mu.RLock()
	sb := s.r.sandboxes[sandboxID]
	s.r.mu.RUnlock()
	if sb == nil {
		return errNotFound("pod sandbox", sandboxID)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("localhost", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("port-forward to %s port %d: %w", sandboxID, port, err)
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	// The session ends when the pod's side has delivered everything
	// (after the client's end reached it) or the stream goes away.
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
	}
	return err
}
