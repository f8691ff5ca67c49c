package hostops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ExecError is the error of a host command that failed: it carries the
// command line, the exit code and what the command wrote to stderr, so a
// caller can decide on the exit code (never on the text) and a log line
// shows what ran.
type ExecError struct {
	// Command is the program and its arguments.
	Command []string
	// ExitCode is the command's exit status, or -1 when it did not start,
	// was killed by a signal or by the context.
	ExitCode int
	// Stderr is the command's standard error, trimmed.
	Stderr string
	// Err is the underlying error from os/exec or the context.
	Err error
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("%s: exit code %d", strings.Join(e.Command, " "), e.ExitCode)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitCodeOf returns the exit code carried by an *ExecError in err's chain,
// or -1 when err is not one.
func ExitCodeOf(err error) int {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1
}

// run executes name with args and returns its standard output. Every host
// command in volplane goes through here.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	ee := &ExecError{
		Command:  append([]string{name}, args...),
		ExitCode: -1,
		Stderr:   strings.TrimSpace(stderr.String()),
		Err:      err,
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		ee.ExitCode = exitErr.ExitCode()
	}
	if ctx.Err() != nil {
		ee.Err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return stdout.Bytes(), ee
}
