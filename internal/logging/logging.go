package logging

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

type ctxKey struct{}

// NewContext returns a context carrying logger.
func NewContext(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, logger)
}

// FromContext returns the logger carried by ctx, or slog.Default().
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Options configure Setup.
type Options struct {
	// Verbosity is klog's -v: upstream messages at V(n) with n <= Verbosity
	// are logged at debug level. 0 keeps upstream to warnings and errors.
	Verbosity int
	// JSON selects slog's JSON handler instead of text.
	JSON bool
}

// Setup installs the process-wide logger writing to w and routes klog into
// it. It returns the logger, also installed as slog.Default.
func Setup(w io.Writer, opts Options) *slog.Logger {
	level := slog.LevelInfo
	if opts.Verbosity > 0 {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, hopts)
	if opts.JSON {
		h = slog.NewJSONHandler(w, hopts)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)

	// klog: info messages from upstream are demoted below volplane's own
	// info unless -v asks for them; errors keep their level.
	upstreamLogger.Store(slog.New(&upstreamHandler{inner: h, verbose: opts.Verbosity > 0}))
	klog.SetLogger(logr.FromSlogHandler(Upstream().With("component", "upstream").Handler()))
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(opts.Verbosity))
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	return logger
}

var (
	upstreamLogger atomic.Pointer[slog.Logger]
	stopping       atomic.Bool
)

// Upstream is the logger for messages of embedded upstream components
// (klog, etcd's zap): filtered as the package doc says.
func Upstream() *slog.Logger {
	if l := upstreamLogger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// Stopping tells the upstream logger that the process is shutting down:
// from now on upstream components complain about peers that went away on
// purpose, so their messages are shown only with -v.
func Stopping() { stopping.Store(true) }

// benign are upstream error messages that are expected in volplane's
// configuration and say nothing wrong; they are logged at debug level. A
// message maps to the text its "err" attribute must contain to be benign,
// or to "" when the message alone says it.
var benign = map[string]string{
	// component-base/metrics: no label allow-list manifest is configured.
	"The manifest file is empty, ignoring.": "",
	// kube-apiserver with --endpoint-reconciler-type=none (a loopback
	// --listen) removes the kubernetes Service's endpoints at every start.
	"Found stale data, removed previous endpoints on kubernetes service, apiserver didn't exit successfully previously": "",
	// embedded etcd serving only on unix sockets in a 0700 directory.
	"Running http and grpc server on single port. This is not recommended for production.": "",
	"simple token is not cryptographically signed":                                         "",
	// On a first start kube-apiserver's own lease and token-tracking
	// controllers run before its bootstrap controller has created
	// kube-system, and retry until it has.
	"Failed to ensure lease exists, will retry": `namespaces "kube-system" not found`,
	"Error while syncing ConfigMap":             `namespaces "kube-system" not found`,
}

// isBenign reports whether r is one of the benign upstream messages.
func isBenign(r slog.Record) bool {
	want, ok := benign[r.Message]
	if !ok || want == "" {
		return ok
	}
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			found = strings.Contains(a.Value.String(), want)
			return false
		}
		return true
	})
	return found
}

// upstreamHandler drops upstream info records unless verbose is set, and
// reports the ones it lets through at debug level, as it does the benign
// errors.
type upstreamHandler struct {
	inner   slog.Handler
	verbose bool
}

func (h *upstreamHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelWarn || stopping.Load() {
		return h.verbose && h.inner.Enabled(ctx, slog.LevelDebug)
	}
	return h.inner.Enabled(ctx, l)
}

func (h *upstreamHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || stopping.Load() || isBenign(r) {
		if !h.verbose {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.inner.Handle(ctx, r)
}

func (h *upstreamHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &upstreamHandler{inner: h.inner.WithAttrs(attrs), verbose: h.verbose}
}

func (h *upstreamHandler) WithGroup(name string) slog.Handler {
	return &upstreamHandler{inner: h.inner.WithGroup(name), verbose: h.verbose}
}
