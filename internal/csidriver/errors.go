package csidriver

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"volplane/internal/csidriver/state"
)

// rpcError is an error that carries its gRPC code and keeps the chain of
// the error it wraps, so errors.Is still sees the cause and grpc-go sends
// the code chosen where the error was born.
type rpcError struct {
	code codes.Code
	err  error
}

func (e *rpcError) Error() string              { return e.err.Error() }
func (e *rpcError) Unwrap() error              { return e.err }
func (e *rpcError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

// errorf returns an error with code and a formatted message; %w wraps.
func errorf(code codes.Code, format string, args ...any) error {
	return &rpcError{code: code, err: fmt.Errorf(format, args...)}
}

// hostError wraps an error from the pool, the host or the store with what
// the driver was doing. Errors that already carry a code keep it; the
// store's sentinels and context errors map to their codes; anything else
// is Internal.
func hostError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf(format+": %w", append(args, err)...)
	var re *rpcError
	switch {
	case errors.As(err, &re):
		return &rpcError{code: re.code, err: wrapped}
	case errors.Is(err, state.ErrNotFound):
		return &rpcError{code: codes.NotFound, err: wrapped}
	case errors.Is(err, state.ErrAlreadyExists):
		return &rpcError{code: codes.AlreadyExists, err: wrapped}
	case errors.Is(err, context.DeadlineExceeded):
		return &rpcError{code: codes.DeadlineExceeded, err: wrapped}
	case errors.Is(err, context.Canceled):
		return &rpcError{code: codes.Canceled, err: wrapped}
	}
	return &rpcError{code: codes.Internal, err: wrapped}
}
