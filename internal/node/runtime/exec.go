package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Streamer is the runtime's k8s.io/cri-streaming streaming.Runtime: exec
// and attach by container ID, port-forward by sandbox ID. The kubelet API
// serves it with cri-streaming's remotecommand and portforward servers.
type Streamer struct{ r *Runtime }

// running returns the container with id if it runs, else an error with
// the gRPC code the kubelet expects.
func (r *Runtime) running(id string) (*container, error) {
	c, err := r.get(id)
	if err != nil {
		return nil, err
	}
	if st := r.observe(c).State; st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running (%s)", id, st)
	}
	return c, nil
}

// execCmd prepares `runc exec` of args in container id; the process gets
// the container's user, environment and working directory from its
// bundle. pidFile receives the process's host pid, so that a timeout can
// kill it and not just runc.
func (r *Runtime) execCmd(id string, args []string, tty bool, pidFile string) *exec.Cmd {
	full := []string{"--root", r.runcRoot(), "exec", "--pid-file", pidFile}
	if tty {
		full = append(full, "--tty")
	}
	full = append(full, id)
	full = append(full, args...)
	cmd := exec.Command(r.cfg.RuncPath, full...)
	// A background process in the container may keep stdout open
	// after the command ended; stop copying a little later.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// killExec kills the exec'd process named by pidFile.
func killExec(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// exitError turns runc exec's exit into the error the kubelet expects: nil
// for 0, a utilexec.CodeExitError carrying the command's exit code else.
func exitError(err error, args []string) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with %d", strings.Join(args, " "), ee.ExitCode()), Code: ee.ExitCode()}
	}
	return err
}

// tempDir makes a directory for an exec's pid file.
func tempDir() (string, func(), error) {
	d, err := os.MkdirTemp("", "volplane-exec-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// ExecSync implements RuntimeService: it runs cmd in the container and
// returns its output; a non-zero exit is a utilexec.CodeExitError and a
// timeout gRPC DeadlineExceeded (the process is killed).
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	if _, err := r.running(id); err != nil {
		return nil, nil, err
	}
	if len(cmd) == 0 {
		return nil, nil, status.Error(codes.InvalidArgument, "no command to exec")
	}
	dir, cleanup, err := tempDir()
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	pidFile := filepath.Join(dir, "pid")
	c := r.execCmd(id, cmd, false, pidFile)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case err = <-done:
		return stdout.Bytes(), stderr.Bytes(), exitError(err, cmd)
	case <-timer:
		killExec(pidFile)
		<-done
		return stdout.Bytes(), stderr.Bytes(), status.Errorf(codes.DeadlineExceeded, "command %q timed out after %s", strings.Join(cmd, " "), timeout)
	case <-ctx.Done():
		killExec(pidFile)
		<-done
		return stdout.Bytes(), stderr.Bytes(), ctx.Err()
	}
}

// Exec implements streaming.Runtime: cmd runs in the container with the
// given streams; with tty the process gets a pseudo-terminal (see
// execTTY) and resize events set its size. The error carries the
// command's exit code (utilexec.ExitError).
func (s *Streamer) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	r := s.r
	if _, err := r.running(id); err != nil {
		return err
	}
	if len(cmd) == 0 {
		return status.Error(codes.InvalidArgument, "no command to exec")
	}
	dir, cleanup, err := tempDir()
	if err != nil {
		return err
	}
	defer cleanup()
	pidFile := filepath.Join(dir, "pid")
	if tty {
		return r.execTTY(ctx, id, cmd, in, out, resize, pidFile)
	}
	c := r.execCmd(id, cmd, false, pidFile)
	if out != nil {
		c.Stdout = out
	}
	if errw != nil {
		c.Stderr = errw
	}
	var stdinR, stdinW *os.File
	if in != nil {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return err
		}
		c.Stdin = stdinR
		defer stdinW.Close()
	}
	err = c.Start()
	if stdinR != nil {
		// The process has its own copy; ours would keep writes from
		// failing once it is gone.
		stdinR.Close()
	}
	if err != nil {
		return err
	}
	if stdinW != nil {
		// Not waited for: the client may never close its stdin.
		go func() {
			_, _ = io.Copy(stdinW, in)
			stdinW.Close()
		}()
	}
	stop := context.AfterFunc(ctx, func() { killExec(pidFile) })
	defer stop()
	return exitError(c.Wait(), cmd)
}

// execTTY runs cmd with a pseudo-terminal the way CRI-O does: runc exec
// --tty in the foreground makes the container's terminal and relays it to
// its own stdio, which is the slave of a host terminal pair whose master
// this side copies. (runc hands a master over a console socket only to a
// caller that detaches, which would lose the exit code.) A resize sets
// the host pair's size; the kernel tells runc with SIGWINCH and runc
// resizes the container's terminal.
func (r *Runtime) execTTY(ctx context.Context, id string, cmd []string, in io.Reader, out io.Writer, resize <-chan remotecommandserver.TerminalSize, pidFile string) error {
	master, slave, err := openPTY()
	if err != nil {
		return fmt.Errorf("exec in %s: %w", id, err)
	}
	defer master.Close()
	setSize := func(size remotecommandserver.TerminalSize) {
		_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	}
	// A size the client sent already applies from the start.
	select {
	case size, ok := <-resize:
		if ok {
			setSize(size)
		}
	default:
	}
	c := r.execCmd(id, cmd, true, pidFile)
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = c.Start()
	slave.Close()
	if err != nil {
		return err
	}
	if resize != nil {
		go func() {
			for size := range resize {
				setSize(size)
			}
		}()
	}
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// Ends with EIO once runc, the terminal's last holder, exits.
		if out == nil {
			out = io.Discard
		}
		_, _ = io.Copy(out, master)
	}()
	stop := context.AfterFunc(ctx, func() { killExec(pidFile) })
	defer stop()
	err = c.Wait()
	<-copied
	return exitError(err, cmd)
}

// openPTY opens a new pseudo-terminal pair on the host.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("open pty peer: %w", errno)
	}
	return m, os.NewFile(uintptr(fd), "pty-slave"), nil
}
