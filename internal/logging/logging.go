package logging

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
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
	klog.SetLoggerWithOptions(logr.FromSlogHandler(Upstream().With("component", "upstream").Handler()),
		klog.WriteKlogBuffer(klogBuffer))
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(opts.Verbosity))
	// Everything goes through the logger; logtostderr also keeps klog.Fatal
	// from dumping every goroutine's stack before it exits.
	_ = fs.Set("logtostderr", "true")
	_ = fs.Set("alsologtostderr", "false")
	klog.OsExit = upstreamExit
	return logger
}

// klogBuffer logs one of klog's printf-style messages (Infof, Warning,
// Errorf, Fatal, ...), which klog hands over formatted behind its header
// "Lmmdd hh:mm:ss.uuuuuu threadid file:line] ", at the level its severity
// letter L names. Passed through logr instead, warnings would become info
// and drop out of the default output, and a Fatal's reason with them.
func klogBuffer(data []byte) {
	if len(data) == 0 {
		return
	}
	level := slog.LevelInfo
	switch data[0] {
	case 'W':
		level = slog.LevelWarn
	case 'E', 'F':
		level = slog.LevelError
	}
	msg := data
	if i := bytes.Index(data, []byte("] ")); i >= 0 {
		msg = data[i+2:]
	}
	msg = bytes.TrimSuffix(msg, []byte("\n"))
	var args []any
	if data[0] == 'F' {
		args = []any{"fatal", true}
	}
	Upstream().Log(context.Background(), level, string(msg), append(args, "component", "upstream")...)
}

// atFatal is what runs before an upstream klog.Fatal ends the process.
var atFatal atomic.Pointer[func()]

// AtFatal sets what runs before an upstream component's klog.Fatal ends
// the process, such as stopping the control plane so that etcd closes
// cleanly and the kubeconfig of a server that no longer answers is gone.
func AtFatal(fn func()) { atFatal.Store(&fn) }

// upstreamExit is klog's exit. A component that gives up because the
// process is stopping it (its API went away first) does not end the
// process: the goroutine waits while the orderly stop goes on and decides
// the exit code. Any other fatal runs the AtFatal hook, then exits.
func upstreamExit(code int) {
	if stopping.Load() {
		select {}
	}
	if fn := atFatal.Load(); fn != nil {
		(*fn)()
	}
	os.Exit(code)
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

// benign are upstream warnings and errors that are expected in volplane's
// configuration and say nothing wrong; they are logged at debug level. A
// message may hold * for any text; err, when set, is text the record's
// "err" attribute must contain for the message to be benign.
var benign = []struct{ msg, err string }{
	// component-base/metrics: no label allow-list manifest is configured.
	{msg: "The manifest file is empty, ignoring."},
	// kube-apiserver with --endpoint-reconciler-type=none (a loopback
	// --listen) removes the kubernetes Service's endpoints at every start.
	{msg: "Found stale data, removed previous endpoints on kubernetes service, apiserver didn't exit successfully previously"},
	// embedded etcd serving only on unix sockets in a 0700 directory.
	{msg: "Running http and grpc server on single port. This is not recommended for production."},
	{msg: "simple token is not cryptographically signed"},
	// kube-apiserver at every start, for each beta and alpha API version
	// that is off by default, as upstream's are.
	{msg: "Skipping API * because it has no resources."},
	// On a first start kube-apiserver's own lease and token-tracking
	// controllers run before its bootstrap controller has created
	// kube-system, and retry until it has.
	{msg: "Failed to ensure lease exists, will retry", err: `namespaces "kube-system" not found`},
	{msg: "Error while syncing ConfigMap", err: `namespaces "kube-system" not found`},
}

// isBenign reports whether r is one of the benign upstream messages.
func isBenign(r slog.Record) bool {
	for _, b := range benign {
		if !wildcardMatch(b.msg, r.Message) {
			continue
		}
		if b.err == "" {
			return true
		}
		found := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				found = strings.Contains(a.Value.String(), b.err)
				return false
			}
			return true
		})
		return found
	}
	return false
}

// wildcardMatch reports whether s matches pattern, in which * stands for
// any text (slashes too, unlike path.Match).
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
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
