package csidriver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"volplane/internal/logging"
)

// strippedValue replaces every secret in a logged request.
const strippedValue = "***stripped***"

// stripSecrets returns a copy of m in which every field the CSI spec marks
// as secret (the csi_secret field option), at any depth, has its values
// replaced. It finds them by the option, not by name, so secrets added in
// later spec versions are stripped too.
func stripSecrets(m proto.Message) proto.Message {
	c := proto.Clone(m)
	stripMessage(c.ProtoReflect())
	return c
}

func isSecret(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	secret, _ := proto.GetExtension(opts, csi.E_CsiSecret).(bool)
	return secret
}

func stripMessage(m protoreflect.Message) {
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	for _, fd := range fields {
		v := m.Get(fd)
		switch {
		case isSecret(fd) && fd.IsMap() && fd.MapValue().Kind() == protoreflect.StringKind:
			mp := m.Mutable(fd).Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			for _, k := range keys {
				mp.Set(k, protoreflect.ValueOfString(strippedValue))
			}
		case isSecret(fd) && fd.Kind() == protoreflect.StringKind && !fd.IsList():
			m.Set(fd, protoreflect.ValueOfString(strippedValue))
		case isSecret(fd):
			m.Clear(fd)
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				stripMessage(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					stripMessage(mv.Message())
					return true
				})
			}
		case fd.IsList():
		case fd.Kind() == protoreflect.MessageKind:
			stripMessage(v.Message())
		}
	}
}

// requestText renders a request for a log line, secrets stripped.
func requestText(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return fmt.Sprintf("%T", req)
	}
	b, err := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(stripSecrets(m))
	if err != nil {
		return fmt.Sprintf("%T", req)
	}
	return string(b)
}

var rpcSeq atomic.Uint64

// logInterceptor is the one place RPCs are logged: handlers return errors
// and never log them. It gives each call a logger in its context, turns a
// panic into Internal, makes sure every error carries a gRPC code and logs
// the outcome with the request, secrets stripped.
func logInterceptor(base *slog.Logger, m *metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		log := base.With("rpc", info.FullMethod, "call", rpcSeq.Add(1))
		ctx = logging.NewContext(ctx, log)
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in RPC handler", "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "internal error: %v", r)
			}
			code := codes.OK
			if err != nil {
				st, ok := status.FromError(err)
				if !ok {
					st = status.New(codes.Internal, err.Error())
					err = st.Err()
				}
				code = st.Code()
			}
			elapsed := time.Since(start)
			if m != nil {
				m.observe(info.FullMethod, code, elapsed)
			}
			attrs := []any{"code", code.String(), "duration", elapsed}
			switch code {
			case codes.OK:
				if log.Enabled(ctx, slog.LevelDebug) {
					log.Debug("RPC done", append(attrs, "request", requestText(req))...)
				}
			case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable:
				log.Error("RPC failed", append(attrs, "err", err, "request", requestText(req))...)
			default:
				log.Info("RPC refused", append(attrs, "err", err, "request", requestText(req))...)
			}
		}()
		return handler(ctx, req)
	}
}
