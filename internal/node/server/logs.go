package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
)

// The CRI log format, one record a line:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <F|P>[:more tags] <text>
//
// A line the container wrote longer than the runtime's buffer, or not yet
// ended, is split into P (partial) records followed by one F (full)
// record; the newline that ended it is not in the file, the record's own
// line end stands for it.
const (
	timeFormatIn  = "2006-01-02T15:04:05.999999999Z07:00" // lenient RFC3339Nano
	timeFormatOut = "2006-01-02T15:04:05.000000000Z07:00" // fixed width, as the kubelet writes
	// followCheckPeriod bounds how long a follower waits without a file
	// event before it looks again, as the kubelet's.
	followCheckPeriod = time.Second
)

// logRecord is one parsed line of a CRI log file.
type logRecord struct {
	ts      time.Time
	stream  string // "stdout" or "stderr"
	partial bool
	text    []byte
}

// parseLogLine parses one line of a CRI log file, without its newline.
func parseLogLine(line []byte) (logRecord, error) {
	var rec logRecord
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return rec, errors.New("no timestamp")
	}
	t, err := time.Parse(timeFormatIn, string(ts))
	if err != nil {
		return rec, fmt.Errorf("timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return rec, errors.New("no stream")
	}
	if s := string(stream); s != "stdout" && s != "stderr" {
		return rec, fmt.Errorf("unknown stream %q", s)
	}
	tags, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// An empty partial record may be written without the space.
		tags, text = rest, nil
	}
	first, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(first) {
	case "P":
		rec.partial = true
	case "F":
	default:
		return rec, fmt.Errorf("unknown tag %q", first)
	}
	rec.ts, rec.stream, rec.text = t, string(stream), text
	return rec, nil
}

// logOptions are a /containerLogs request's query, upstream's
// PodLogOptions as the kubelet reads them.
type logOptions struct {
	follow     bool
	previous   bool
	timestamps bool
	tailLines  *int64
	limitBytes *int64
	since      time.Time // zero: from the start
	stream     string
}

// errInvalidLogOptions marks options that decode but are not valid; the
// kubelet answers them 422 rather than 400.
var errInvalidLogOptions = errors.New("invalid log options")

// parseLogOptions reads the query as the kubelet does: booleans are true
// unless "0" or "false", "tail" is the old name of tailLines ("all" is no
// limit), sinceSeconds counts back from now.
func parseLogOptions(q url.Values, now time.Time) (logOptions, error) {
	o := logOptions{stream: corev1.LogStreamAll}
	boolean := func(name string) bool {
		v, ok := q[name]
		return ok && len(v) > 0 && v[0] != "0" && !strings.EqualFold(v[0], "false")
	}
	integer := func(name string) (*int64, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &n, nil
	}
	o.follow, o.previous, o.timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	if tail := q.Get("tail"); tail != "" {
		q = cloneValues(q)
		q.Del("tailLines")
		if tail != "all" {
			q.Set("tailLines", tail)
		}
	}
	var err error
	if o.tailLines, err = integer("tailLines"); err != nil {
		return o, err
	}
	if o.limitBytes, err = integer("limitBytes"); err != nil {
		return o, err
	}
	sinceSeconds, err := integer("sinceSeconds")
	if err != nil {
		return o, err
	}
	var sinceTime time.Time
	if v := q.Get("sinceTime"); v != "" {
		if sinceTime, err = time.Parse(time.RFC3339, v); err != nil {
			return o, fmt.Errorf("sinceTime: %w", err)
		}
	}
	if v := q.Get("stream"); v != "" {
		o.stream = v
	}

	switch {
	case o.tailLines != nil && *o.tailLines < 0,
		o.limitBytes != nil && *o.limitBytes < 1,
		sinceSeconds != nil && !sinceTime.IsZero(),
		sinceSeconds != nil && *sinceSeconds < 1,
		o.stream != corev1.LogStreamAll && o.stream != corev1.LogStreamStdout && o.stream != corev1.LogStreamStderr,
		o.stream != corev1.LogStreamAll && o.tailLines != nil:
		return o, errInvalidLogOptions
	}
	switch {
	case sinceSeconds != nil:
		o.since = now.Add(-time.Duration(*sinceSeconds) * time.Second)
	case !sinceTime.IsZero():
		o.since = sinceTime
	}
	return o, nil
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// errLimitReached ends a read that wrote limitBytes.
var errLimitReached = errors.New("byte limit reached")

// logWriter writes records' text: partial records join the line they
// begin, each line gets its first record's timestamp when asked, lines
// older than since and streams not asked for are left out, and it stops
// after limitBytes.
type logWriter struct {
	opts   logOptions
	out    io.Writer
	remain int64
	// Per stream: a line is open (its last record was partial), and
	// whether that line is being left out.
	open, skip map[string]bool
}

func newLogWriter(out io.Writer, opts logOptions) *logWriter {
	w := &logWriter{opts: opts, out: out, remain: -1, open: map[string]bool{}, skip: map[string]bool{}}
	if opts.limitBytes != nil {
		w.remain = *opts.limitBytes
	}
	return w
}

func (w *logWriter) wants(stream string) bool {
	switch w.opts.stream {
	case corev1.LogStreamStdout:
		return stream == "stdout"
	case corev1.LogStreamStderr:
		return stream == "stderr"
	}
	return true
}

func (w *logWriter) write(rec logRecord) error {
	var buf []byte
	if !w.open[rec.stream] {
		w.skip[rec.stream] = !w.wants(rec.stream) || rec.ts.Before(w.opts.since)
		if w.opts.timestamps {
			buf = append(rec.ts.AppendFormat(buf, timeFormatOut), ' ')
		}
	}
	w.open[rec.stream] = rec.partial
	if w.skip[rec.stream] {
		return nil
	}
	buf = append(buf, rec.text...)
	if !rec.partial {
		buf = append(buf, '\n')
	}
	limited := false
	if w.remain >= 0 && int64(len(buf)) >= w.remain {
		buf, limited = buf[:w.remain], true
	}
	n, err := w.out.Write(buf)
	if w.remain >= 0 {
		w.remain -= int64(n)
	}
	if err != nil {
		return err
	}
	if limited {
		return errLimitReached
	}
	return nil
}

// tailStart returns the offset in f (of size size) from which exactly n
// lines remain, or 0 when there are fewer. A line is the records up to
// and including an F record; partial records at the very end are a line
// not yet ended, and count as one. It reads f backwards.
func tailStart(f io.ReaderAt, size, n int64) (int64, error) {
	if n == 0 {
		return size, nil
	}
	const block = 32 << 10
	var (
		count   int64 // lines after the position reached
		seenAny bool
		carry   []byte // the start of a line whose rest was read before
		end     = size // offset just after carry
	)
	for {
		start := max(end-block, 0)
		buf := make([]byte, end-start, end-start+int64(len(carry)))
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		buf = append(buf, carry...)
		// Walk the lines of buf from the last. The first line of buf may
		// be cut: it is carried into the next block unless buf starts
		// the file.
		for {
			i := bytes.LastIndexByte(bytes.TrimSuffix(buf, []byte{'\n'}), '\n')
			if i < 0 && start > 0 {
				carry, end = buf, start
				break
			}
			rec, err := parseLogLine(bytes.TrimSuffix(buf[i+1:], []byte{'\n'}))
			if err == nil {
				if !seenAny && rec.partial {
					count++ // the unended line at the end
				}
				seenAny = true
				if !rec.partial {
					if count == n {
						return start + int64(len(buf)), nil
					}
					count++
				}
			}
			if i < 0 {
				return 0, nil
			}
			buf = buf[:i+1]
		}
	}
}

// readLogs copies the log at path to w as opts ask. Without follow it
// stops at the size the file had when opened; with follow it keeps
// reading until running reports the container stopped and the file is
// read to its end, or ctx is done. flush sends what was written when the
// reader is about to wait.
func readLogs(ctx context.Context, path string, opts logOptions, w io.Writer, flush func(), running func(context.Context) (bool, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open log file %q: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat log file %q: %w", path, err)
	}
	start := int64(0)
	if opts.tailLines != nil {
		if start, err = tailStart(f, st.Size(), *opts.tailLines); err != nil {
			return fmt.Errorf("failed to tail %d lines of log file %q: %w", *opts.tailLines, path, err)
		}
	}
	var src io.Reader = io.NewSectionReader(f, start, st.Size()-start)
	if opts.follow {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("failed to seek in log file %q: %w", path, err)
		}
		src = f
	}
	r := bufio.NewReader(src)
	lw := newLogWriter(w, opts)
	emit := func(line []byte) error {
		rec, err := parseLogLine(bytes.TrimSuffix(line, []byte{'\n'}))
		if err != nil {
			return nil // as the kubelet: a line that does not parse is skipped
		}
		return lw.write(rec)
	}
	var (
		pending  []byte // a line read up to the end of the file, unended
		watcher  *fsnotify.Watcher
		lastRead bool // the container stopped: read to the end once more
	)
	defer func() {
		if watcher != nil {
			watcher.Close()
		}
	}()
	for {
		line, err := r.ReadBytes('\n')
		pending = append(pending, line...)
		if err == nil {
			err := emit(pending)
			pending = pending[:0]
			if errors.Is(err, errLimitReached) {
				return nil
			}
			if err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("failed to read log file %q: %w", path, err)
		}
		if !opts.follow || lastRead {
			if len(pending) > 0 {
				if err := emit(pending); err != nil && !errors.Is(err, errLimitReached) {
					return err
				}
			}
			return nil
		}
		flush()
		if watcher == nil {
			if watcher, err = fsnotify.NewWatcher(); err != nil {
				return fmt.Errorf("failed to watch log file %q: %w", path, err)
			}
			if err := watcher.Add(filepath.Dir(path)); err != nil {
				return fmt.Errorf("failed to watch log file %q: %w", path, err)
			}
			continue // the file may have grown before the watch began
		}
		ok, err := running(ctx)
		if err != nil {
			return err
		}
		if !ok {
			lastRead = true
			continue
		}
		if err := waitForLog(ctx, watcher); err != nil {
			return err
		}
	}
}

// waitForLog waits for a change in the log's directory, at most
// followCheckPeriod.
func waitForLog(ctx context.Context, w *fsnotify.Watcher) error {
	t := time.NewTimer(followCheckPeriod)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.Events:
	case err := <-w.Errors:
		return fmt.Errorf("watching log file: %w", err)
	case <-t.C:
	}
	return nil
}
