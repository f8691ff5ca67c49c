package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestParseLogLine(t *testing.T) {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		line    string
		want    logRecord
		wantErr bool
	}{
		{line: "2026-11-27T10:00:00.123456789Z stdout F hello world", want: logRecord{ts: ts, stream: "stdout", text: []byte("hello world")}},
		{line: "2026-11-27T10:00:00.123456789Z stderr P part", want: logRecord{ts: ts, stream: "stderr", partial: true, text: []byte("part")}},
		{line: "2026-11-27T10:00:00.123456789Z stdout F ", want: logRecord{ts: ts, stream: "stdout", text: []byte{}}},
		{line: "2026-11-27T10:00:00.123456789Z stdout P", want: logRecord{ts: ts, stream: "stdout", partial: true}},
		{line: "2026-11-27T10:00:00.123456789Z stdout F:x:y  two spaces", want: logRecord{ts: ts, stream: "stdout", text: []byte(" two spaces")}},
		{line: "2026-11-27T11:00:00.123456789+01:00 stdout F zone", want: logRecord{ts: ts, stream: "stdout", text: []byte("zone")}},
		{line: "2026-11-27T10:00:00Z stdout F short time", want: logRecord{ts: ts.Truncate(time.Second), stream: "stdout", text: []byte("short time")}},
		{line: "", wantErr: true},
		{line: "not-a-time stdout F x", wantErr: true},
		{line: "2026-11-27T10:00:00Z stdin F x", wantErr: true},
		{line: "2026-11-27T10:00:00Z stdout X x", wantErr: true},
		{line: "2026-11-27T10:00:00Z stdout", wantErr: true},
		{line: `{"log":"docker json","stream":"stdout","time":"2026-11-27T10:00:00Z"}`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseLogLine([]byte(tt.line))
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseLogLine(%q) = %+v, want an error", tt.line, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseLogLine(%q): %v", tt.line, err)
			continue
		}
		if !got.ts.Equal(tt.want.ts) || got.stream != tt.want.stream || got.partial != tt.want.partial || !bytes.Equal(got.text, tt.want.text) {
			t.Errorf("parseLogLine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseLogOptions(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		query   string
		want    logOptions
		wantErr error // nil, errInvalidLogOptions, or errDecode for any other
	}{
		{query: "", want: logOptions{stream: "All"}},
		{query: "follow=true&previous=1&timestamps=yes", want: logOptions{follow: true, previous: true, timestamps: true, stream: "All"}},
		{query: "follow=false&previous=0&timestamps=FALSE", want: logOptions{stream: "All"}},
		{query: "tailLines=5&limitBytes=10", want: logOptions{tailLines: ptr.To[int64](5), limitBytes: ptr.To[int64](10), stream: "All"}},
		{query: "tail=7", want: logOptions{tailLines: ptr.To[int64](7), stream: "All"}},
		{query: "tail=all&tailLines=3", want: logOptions{stream: "All"}},
		{query: "tailLines=0", want: logOptions{tailLines: ptr.To[int64](0), stream: "All"}},
		{query: "sinceSeconds=60", want: logOptions{since: now.Add(-time.Minute), stream: "All"}},
		{query: "sinceTime=2026-11-27T09:30:00Z", want: logOptions{since: now.Add(-30 * time.Minute), stream: "All"}},
		{query: "stream=Stderr", want: logOptions{stream: "Stderr"}},
		{query: "stream=All&tailLines=2", want: logOptions{tailLines: ptr.To[int64](2), stream: "All"}},
		{query: "tailLines=x", wantErr: errDecode},
		{query: "sinceTime=yesterday", wantErr: errDecode},
		{query: "limitBytes=1.5", wantErr: errDecode},
		{query: "tailLines=-1", wantErr: errInvalidLogOptions},
		{query: "limitBytes=0", wantErr: errInvalidLogOptions},
		{query: "sinceSeconds=0", wantErr: errInvalidLogOptions},
		{query: "sinceSeconds=5&sinceTime=2026-11-27T09:30:00Z", wantErr: errInvalidLogOptions},
		{query: "stream=stdout", wantErr: errInvalidLogOptions},
		{query: "stream=Stdout&tailLines=2", wantErr: errInvalidLogOptions},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseLogOptions(q, now)
		switch {
		case tt.wantErr == errDecode:
			if err == nil || errors.Is(err, errInvalidLogOptions) {
				t.Errorf("%q: error %v, want a decoding error", tt.query, err)
			}
			continue
		case tt.wantErr != nil:
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%q: error %v, want %v", tt.query, err, tt.wantErr)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", tt.query, err)
			continue
		}
		if got.follow != tt.want.follow || got.previous != tt.want.previous || got.timestamps != tt.want.timestamps ||
			!ptrEqual(got.tailLines, tt.want.tailLines) || !ptrEqual(got.limitBytes, tt.want.limitBytes) ||
			!got.since.Equal(tt.want.since) || got.stream != tt.want.stream {
			t.Errorf("%q: %+v, want %+v", tt.query, got, tt.want)
		}
	}
}

var errDecode = errors.New("decoding error")

func ptrEqual(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// sampleLog has partial lines on both streams, an empty line, and a line
// that does not parse.
const sampleLog = `2026-11-27T10:00:01.000000000Z stdout F one
2026-11-27T10:00:02.000000000Z stderr F err one
2026-11-27T10:00:03.000000000Z stdout P tw
2026-11-27T10:00:03.500000000Z stderr P err
2026-11-27T10:00:04.000000000Z stdout F o
2026-11-27T10:00:04.500000000Z stderr F  two
garbage line
2026-11-27T10:00:05.000000000Z stdout F 
2026-11-27T10:00:06.000000000Z stdout F three
`

func TestReadLogs(t *testing.T) {
	since := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	tests := []struct {
		name    string
		content string
		opts    logOptions
		want    string
	}{
		// Partial records of the two streams interleave as they were written.
		{name: "all", content: sampleLog, want: "one\nerr one\ntwerro\n two\n\nthree\n"},
		{name: "stdout", content: sampleLog, opts: logOptions{stream: "Stdout"}, want: "one\ntwo\n\nthree\n"},
		{name: "stderr", content: sampleLog, opts: logOptions{stream: "Stderr"}, want: "err one\nerr two\n"},
		{name: "timestamps of each line's first record", content: sampleLog, opts: logOptions{timestamps: true},
			want: "2026-11-27T10:00:01.000000000Z one\n2026-11-27T10:00:02.000000000Z err one\n" +
				"2026-11-27T10:00:03.000000000Z tw2026-11-27T10:00:03.500000000Z erro\n two\n" +
				"2026-11-27T10:00:05.000000000Z \n2026-11-27T10:00:06.000000000Z three\n"},
		{name: "tail 2", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](2)}, want: "\nthree\n"},
		{name: "tail 3 spans the garbage line and splits the stderr line", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](3)}, want: " two\n\nthree\n"},
		{name: "tail 5 starts after a whole line", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](5)}, want: "err one\ntwerro\n two\n\nthree\n"},
		{name: "tail more than there is", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](100)}, want: "one\nerr one\ntwerro\n two\n\nthree\n"},
		{name: "tail 0", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](0)}, want: ""},
		{name: "tail counts an unended line", content: "2026-11-27T10:00:01Z stdout F a\n2026-11-27T10:00:02Z stdout F b\n2026-11-27T10:00:03Z stdout P c",
			opts: logOptions{tailLines: ptr.To[int64](2)}, want: "b\nc"},
		{name: "tail joins partial records", content: "2026-11-27T10:00:01Z stdout F a\n2026-11-27T10:00:02Z stdout P b\n2026-11-27T10:00:03Z stdout P c\n2026-11-27T10:00:04Z stdout F d\n",
			opts: logOptions{tailLines: ptr.To[int64](1)}, want: "bcd\n"},
		{name: "since", content: sampleLog, opts: logOptions{since: since("2026-11-27T10:00:03Z")}, want: "twerro\n two\n\nthree\n"},
		{name: "since keeps a line begun after it whole", content: sampleLog, opts: logOptions{since: since("2026-11-27T10:00:03.2Z")}, want: "err two\n\nthree\n"},
		{name: "limit bytes", content: sampleLog, opts: logOptions{limitBytes: ptr.To[int64](10)}, want: "one\nerr on"},
		{name: "limit bytes at a line end", content: sampleLog, opts: logOptions{limitBytes: ptr.To[int64](4)}, want: "one\n"},
		{name: "limit bytes count timestamps", content: sampleLog, opts: logOptions{limitBytes: ptr.To[int64](12), timestamps: true}, want: "2026-11-27T1"},
		{name: "limit with tail", content: sampleLog, opts: logOptions{tailLines: ptr.To[int64](2), limitBytes: ptr.To[int64](3)}, want: "\nth"},
		{name: "empty file", content: "", want: ""},
		{name: "last line without newline", content: "2026-11-27T10:00:01Z stdout F a\n2026-11-27T10:00:02Z stdout F b", want: "a\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.stream == "" {
				tt.opts.stream = "All"
			}
			var out bytes.Buffer
			err := readLogs(context.Background(), writeLog(t, tt.content), tt.opts, &out, func() {}, func(context.Context) (bool, error) {
				t.Error("running asked without follow")
				return false, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestTailStartLongFile crosses tailStart's block boundary with long
// lines.
func TestTailStartLongFile(t *testing.T) {
	var content, want strings.Builder
	line := strings.Repeat("x", 5000)
	for i := range 40 {
		content.WriteString("2026-11-27T10:00:00Z stdout F " + line + "\n")
		if i >= 30 {
			want.WriteString(line + "\n")
		}
	}
	var out bytes.Buffer
	opts := logOptions{tailLines: ptr.To[int64](10), stream: "All"}
	if err := readLogs(context.Background(), writeLog(t, content.String()), opts, &out, func() {}, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("got %d bytes, want %d", out.Len(), want.Len())
	}
}

// TestFollow: a followed log keeps reading while the container runs and
// ends once it has stopped and the file is read to its end.
func TestFollow(t *testing.T) {
	// The file ends in the middle of a record.
	path := writeLog(t, "2026-11-27T10:00:01Z stdout F first\n2026-11-27T10:00:02Z stdout P unended ")
	calls := 0
	running := func(context.Context) (bool, error) {
		calls++
		switch calls {
		case 1:
			// The container writes more, then stops.
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return false, err
			}
			defer f.Close()
			_, err = f.WriteString("\n2026-11-27T10:00:03Z stdout F line\n2026-11-27T10:00:04Z stdout F last\n")
			return true, err
		default:
			return false, nil
		}
	}
	flushes := 0
	var out bytes.Buffer
	opts := logOptions{follow: true, tailLines: ptr.To[int64](1), stream: "All"}
	if err := readLogs(context.Background(), path, opts, &out, func() { flushes++ }, running); err != nil {
		t.Fatal(err)
	}
	if want := "unended line\nlast\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if calls != 2 || flushes == 0 {
		t.Errorf("running asked %d times, %d flushes; want 2 and some", calls, flushes)
	}
}

// TestFollowCancelled: a follower of a running container ends with the
// request.
func TestFollowCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	path := writeLog(t, "2026-11-27T10:00:01Z stdout F first\n")
	var out bytes.Buffer
	err := readLogs(ctx, path, logOptions{follow: true, stream: "All"}, &out, func() {}, func(context.Context) (bool, error) {
		cancel()
		return true, nil
	})
	if !errors.Is(err, context.Canceled) || out.String() != "first\n" {
		t.Errorf("got %q, %v; want first line and context.Canceled", out.String(), err)
	}
}

// TestContainerLogsEndpoint: the HTTP side of /containerLogs: options,
// previous, and the kubelet's status codes.
func TestContainerLogsEndpoint(t *testing.T) {
	cur := writeLog(t, "2026-11-27T10:00:01Z stdout F current\n")
	prev := writeLog(t, "2026-11-27T09:00:01Z stdout F previous\n")
	env := startServer(t, &fakeProvider{
		pods: []*corev1.Pod{testPod("default", "web")},
		logs: map[string]LogFile{
			"default/web/app":          {ContainerID: "c2", Path: cur},
			"default/web/app/previous": {ContainerID: "c1", Path: prev},
			"default/web/init":         {ContainerID: "c0", Path: "/nonexistent/0.log"},
		},
		running: func(string) bool { return false },
	})
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/containerLogs/default/web/app", 200, "current\n"},
		{"/containerLogs/default/web/app?previous=true", 200, "previous\n"},
		{"/containerLogs/default/web/app?follow=true", 200, "current\n"},
		{"/containerLogs/default/web/app?timestamps=true", 200, "2026-11-27T10:00:01.000000000Z current\n"},
		{"/containerLogs/default/web/app?tailLines=-1", 422, `{"message": "Invalid request."}` + "\n"},
		{"/containerLogs/default/web/app?tailLines=x", 400, `{"message": "Unable to decode query."}` + "\n"},
		{"/containerLogs/default/nope/app", 404, `pod "nope" does not exist` + "\n"},
		{"/containerLogs/default/web/nope", 404, `container "nope" not found in pod "web"` + "\n"},
		{"/containerLogs/other/web/app", 404, `pod "web" does not exist` + "\n"},
		{"/containerLogs/default/web/init?previous=true", 400, `container "init" in pod "web" is waiting to start: ContainerCreating` + "\n"},
		{"/containerLogs/default/web/init", 400, ""},
	}
	for _, tt := range tests {
		code, body := env.do(t, env.httpClient(), http.MethodGet, tt.path, adminToken)
		if code != tt.wantCode || (tt.wantBody != "" && body != tt.wantBody) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}
