package csitest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Proxy forwards every gRPC call on its socket, unchanged, to a real CSI
// driver's socket, and can hold the driver's answer to one call: the
// driver has done the work, the caller has not heard of it. A crash test
// kills the caller while the answer is held, restarts it, and checks that
// what the driver did is neither lost nor done twice. Messages are
// forwarded as bytes, so the proxy serves every service (Identity,
// Controller, Node) of any driver.
type Proxy struct {
	// Endpoint is unix://<socket>, what the caller is told to use.
	Endpoint string

	conn *grpc.ClientConn

	mu      sync.Mutex
	hold    string        // method whose next answer is held, "" for none
	held    chan struct{} // closed once that answer is held
	release chan struct{} // closed to let held answers go
	calls   map[string]int
}

// ServeProxy listens on sock and forwards to the driver at target
// (unix://path); it stops when the test ends. sock must be short enough
// for a unix socket path.
func ServeProxy(t testing.TB, sock, target string) *Proxy {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	p := &Proxy{Endpoint: "unix://" + sock, conn: conn, release: make(chan struct{}), calls: map[string]int{}}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.forward))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		p.Release()
		srv.Stop()
		conn.Close()
	})
	return p
}

// Hold arms the proxy: the next call of method (its last path element,
// e.g. "CreateVolume") is forwarded and its answer, success or error,
// held until the caller goes away or Release. The returned channel is
// closed once an answer is held. Later calls pass.
func (p *Proxy) Hold(method string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold, p.held = method, make(chan struct{})
	return p.held
}

// Release lets every held answer go and disarms the proxy.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = ""
	select {
	case <-p.release:
	default:
		close(p.release)
	}
	p.release = make(chan struct{})
}

// Calls is how many calls of method the driver answered.
func (p *Proxy) Calls(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// forward serves any unary call: it passes the request to the driver and
// the answer back, holding it if the method is armed.
func (p *Proxy) forward(_ any, ss grpc.ServerStream) error {
	full, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return fmt.Errorf("csitest proxy: no method in the stream")
	}
	var req, resp frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	ctx := ss.Context()
	err := p.conn.Invoke(ctx, full, &req, &resp)
	method := path.Base(full)
	p.mu.Lock()
	p.calls[method]++
	var held chan struct{}
	release := p.release
	if p.hold == method {
		held, p.hold = p.held, ""
	}
	p.mu.Unlock()
	if held != nil {
		close(held)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-release:
		}
	}
	if err != nil {
		// The driver's status, code and message, goes back as it came.
		return err
	}
	return ss.SendMsg(&resp)
}

// frame is a message as bytes on the wire.
type frame struct{ b []byte }

// rawCodec passes frames through without decoding them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("csitest proxy: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("csitest proxy: cannot unmarshal into %T", v)
	}
	f.b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
