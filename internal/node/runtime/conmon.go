package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"volplane/internal/hostops"
)

// ErrCreate marks a failure of runc create under conmon: the container's
// command is missing, its user or mounts are impossible. Its text is
// runc's own message.
var ErrCreate = errors.New("cannot create container")

// startConmon runs conmon for container c, which runs `runc create` and
// then watches the container: it owns its stdio, writes the CRI log and,
// when the container ends, its exit code to exits/<id>. It returns once
// runc create is done; conmon has then daemonized.
func (r *Runtime) startConmon(ctx context.Context, c *container) error {
	b := r.bundle(c.ID)
	args := []string{
		"--api-version", "1",
		"-c", c.ID, "-u", c.ID,
		"-n", c.Config.GetMetadata().GetName(),
		"-r", r.cfg.RuncPath,
		"-b", b,
		"-p", filepath.Join(b, "pid"),
		"-P", filepath.Join(b, "conmon.pid"),
		"-l", "k8s-file:" + c.LogPath,
		"--exit-dir", r.exitDir(),
		"--socket-dir-path", r.attachDir(),
		"--persist-dir", b,
		"--runtime-arg", "--root=" + r.runcRoot(),
		"--log-level", "error",
	}
	if c.Config.GetTty() {
		args = append(args, "-t")
	}
	if c.Config.GetStdin() {
		args = append(args, "-i")
		if !c.Config.GetStdinOnce() {
			args = append(args, "--leave-stdin-open")
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	// conmon forks and its parent exits at once, so the command is not
	// bound to ctx: the monitor must outlive the call (and the agent).
	cmd := exec.Command(r.cfg.ConmonPath, args...)
	cmd.Dir = b
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "_OCI_SYNCPIPE=3"}
	cmd.ExtraFiles = []*os.File{pw}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return &hostops.ExecError{Command: cmd.Args, ExitCode: -1, Err: err}
	}
	if err := cmd.Wait(); err != nil {
		return &hostops.ExecError{Command: cmd.Args, ExitCode: exitCodeOf(err), Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}

	// conmon writes {"data": pid} once runc create succeeded, or
	// {"data": -1, "message": runc's stderr}; EOF means it died.
	type syncMsg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	lines := make(chan syncMsg, 1)
	errc := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(pr).ReadBytes('\n')
		if err != nil && len(line) == 0 {
			errc <- fmt.Errorf("conmon exited before reporting the container: %w", err)
			return
		}
		var m syncMsg
		if err := json.Unmarshal(line, &m); err != nil {
			errc <- fmt.Errorf("conmon sync message %q: %w", line, err)
			return
		}
		lines <- m
	}()
	select {
	case m := <-lines:
		if m.Data <= 0 {
			return fmt.Errorf("%w: %s", ErrCreate, runcMessage(m.Message))
		}
		return nil
	case err := <-errc:
		return err
	case <-ctx.Done():
		// Closing our end lets the reader goroutine finish.
		pr.Close()
		return ctx.Err()
	}
}

// runcMessage extracts the message of runc's logrus line
// (level=error msg="...") or returns the text trimmed.
func runcMessage(s string) string {
	s = strings.TrimSpace(s)
	if _, msg, ok := strings.Cut(s, `msg="`); ok {
		if u, err := strconv.Unquote(`"` + strings.TrimSuffix(msg, `"`) + `"`); err == nil {
			return u
		}
		return strings.TrimSuffix(msg, `"`)
	}
	return s
}

// exitCodeOf returns the exit status carried by an *exec.ExitError, or -1.
func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode()
	}
	return -1
}

// runc runs runc with the runtime's --root and returns an
// *hostops.ExecError on failure.
func (r *Runtime) runc(ctx context.Context, args ...string) error {
	_, err := r.runcOutput(ctx, args...)
	return err
}

func (r *Runtime) runcOutput(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"--root", r.runcRoot()}, args...)
	cmd := exec.CommandContext(ctx, r.cfg.RuncPath, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &hostops.ExecError{
			Command: cmd.Args, ExitCode: exitCodeOf(err),
			Stderr: runcMessage(stderr.String()), Err: err,
		}
	}
	return stdout.Bytes(), nil
}

// runcStatus is the part of `runc state` the runtime reads.
type runcStatus struct {
	Status  string    `json:"status"`
	Pid     int       `json:"pid"`
	Created time.Time `json:"created"`
}

func (r *Runtime) runcState(ctx context.Context, id string) (runcStatus, error) {
	out, err := r.runcOutput(ctx, "state", id)
	if err != nil {
		return runcStatus{}, err
	}
	var st runcStatus
	err = json.Unmarshal(out, &st)
	return st, err
}

// exitStatus reads the exit code conmon recorded and when: the file's
// modification time is the container's finish time.
func (r *Runtime) exitStatus(id string) (exit, bool) {
	p := filepath.Join(r.exitDir(), id)
	b, err := os.ReadFile(p)
	if err != nil {
		return exit{}, false
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		// Being written (conmon writes through a rename, so rarely).
		return exit{}, false
	}
	fi, err := os.Stat(p)
	if err != nil {
		return exit{}, false
	}
	return exit{Code: int32(code), At: fi.ModTime().UnixNano()}, true
}

// exit is a container's recorded end.
type exit struct {
	Code int32
	At   int64
}

// waitExit polls for the exit file until it appears or ctx ends.
func (r *Runtime) waitExit(ctx context.Context, id string) (exit, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if e, ok := r.exitStatus(id); ok {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return exit{}, ctx.Err()
		case <-t.C:
		}
	}
}

// pid returns the container's init pid as written by runc, or 0.
func (r *Runtime) pid(id string) int {
	b, err := os.ReadFile(filepath.Join(r.bundle(id), "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
