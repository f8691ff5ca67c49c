package client

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"volplane/internal/logging"
)

// DefaultTimeout bounds one call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Client.
type Config struct {
	// Endpoint is the driver's socket: unix:///path, unix:/path or /path.
	Endpoint string
	// Timeout bounds each call; default DefaultTimeout.
	Timeout time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if _, err := SocketPath(c.Endpoint); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return fmt.Errorf("csi client: timeout %v < 0", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return nil
}

// SocketPath returns the path of a unix endpoint: unix:///path, unix:/path
// or a plain absolute path.
func SocketPath(endpoint string) (string, error) {
	path := endpoint
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		path = strings.TrimPrefix(endpoint, "unix://")
	case strings.HasPrefix(endpoint, "unix:"):
		path = strings.TrimPrefix(endpoint, "unix:")
	case strings.Contains(endpoint, "://"):
		return "", fmt.Errorf("csi endpoint %q: only unix sockets are supported", endpoint)
	}
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("csi endpoint %q: the socket path must be absolute", endpoint)
	}
	return path, nil
}

// Client calls one CSI driver. It is safe for concurrent use; the
// connection is made on first use and remade after the driver restarts.
type Client struct {
	cfg        Config
	conn       *grpc.ClientConn
	identity   csi.IdentityClient
	controller csi.ControllerClient
	node       csi.NodeClient
}

// New returns a client for the driver at cfg.Endpoint. It does not wait
// for the driver: calls fail with Unavailable until the socket answers.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, _ := SocketPath(cfg.Endpoint)
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(logCalls),
	)
	if err != nil {
		return nil, fmt.Errorf("csi client %s: %w", cfg.Endpoint, err)
	}
	return &Client{cfg: cfg, conn: conn,
		identity: csi.NewIdentityClient(conn), controller: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Endpoint is the driver's socket as configured.
func (c *Client) Endpoint() string { return c.cfg.Endpoint }

// Code is the gRPC code of an error a call returned: OK for nil, Unknown
// for an error without a status.
func Code(err error) codes.Code { return status.Code(err) }

// call runs one RPC under the per-call timeout and wraps its error with
// the method's name, keeping the status.
func call[Req, Resp any](ctx context.Context, c *Client, method string, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := rpc(ctx, req)
	if err != nil {
		return resp, &CallError{Method: method, err: err}
	}
	return resp, nil
}

// CallError is a failed call. Error() is the driver's status as gRPC
// prints it ("rpc error: code = ... desc = ..."), the text upstream's
// sidecars put in events; Method names the call.
type CallError struct {
	Method string
	err    error
}

func (e *CallError) Error() string { return e.err.Error() }
func (e *CallError) Unwrap() error { return e.err }

// GRPCStatus lets status.Code and status.FromError see the driver's
// status through the wrapper.
func (e *CallError) GRPCStatus() *status.Status {
	if s, ok := status.FromError(e.err); ok {
		return s
	}
	return status.New(codes.Unknown, e.err.Error())
}

// logCalls logs every call once at debug level: method, code, duration.
// Request bodies are never logged, so neither are their secrets.
func logCalls(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	logging.FromContext(ctx).Debug("csi call", "method", method, "code", status.Code(err).String(),
		"duration", time.Since(start))
	return err
}

// PluginInfo is the driver's identity.
type PluginInfo struct {
	Name          string
	VendorVersion string
}

// PluginInfo asks the driver for its name and version.
func (c *Client) PluginInfo(ctx context.Context) (PluginInfo, error) {
	resp, err := call(ctx, c, "GetPluginInfo", c.identity.GetPluginInfo, &csi.GetPluginInfoRequest{})
	if err != nil {
		return PluginInfo{}, err
	}
	if resp.GetName() == "" {
		return PluginInfo{}, errors.New("csi GetPluginInfo: the driver returned no name")
	}
	return PluginInfo{Name: resp.GetName(), VendorVersion: resp.GetVendorVersion()}, nil
}

// Probe reports whether the driver is ready. A driver that leaves the
// answer out is ready, as the spec says.
func (c *Client) Probe(ctx context.Context) (bool, error) {
	resp, err := call(ctx, c, "Probe", c.identity.Probe, &csi.ProbeRequest{})
	if err != nil {
		return false, err
	}
	return resp.GetReady() == nil || resp.GetReady().GetValue(), nil
}

// Capabilities are the parts of the plugin's and its controller's
// capabilities volplane's controllers act on.
type Capabilities struct {
	// ControllerService: the plugin has a controller service.
	ControllerService bool
	// Topology: volumes have accessibility constraints.
	Topology bool
	// CreateDelete, PublishUnpublish, GetCapacity, SingleNodeMultiWriter
	// are controller RPC capabilities.
	CreateDelete, PublishUnpublish, GetCapacity, SingleNodeMultiWriter bool
	// PublishReadonly: ControllerPublish honours readonly.
	PublishReadonly bool
}

// Capabilities reads the plugin's capabilities and, when it has a
// controller service, the controller's.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	var out Capabilities
	presp, err := call(ctx, c, "GetPluginCapabilities", c.identity.GetPluginCapabilities, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		return out, err
	}
	for _, pc := range presp.GetCapabilities() {
		switch pc.GetService().GetType() {
		case csi.PluginCapability_Service_CONTROLLER_SERVICE:
			out.ControllerService = true
		case csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS:
			out.Topology = true
		}
	}
	if !out.ControllerService {
		return out, nil
	}
	cresp, err := call(ctx, c, "ControllerGetCapabilities", c.controller.ControllerGetCapabilities, &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		return out, err
	}
	for _, cc := range cresp.GetCapabilities() {
		switch cc.GetRpc().GetType() {
		case csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME:
			out.CreateDelete = true
		case csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME:
			out.PublishUnpublish = true
		case csi.ControllerServiceCapability_RPC_GET_CAPACITY:
			out.GetCapacity = true
		case csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER:
			out.SingleNodeMultiWriter = true
		case csi.ControllerServiceCapability_RPC_PUBLISH_READONLY:
			out.PublishReadonly = true
		}
	}
	return out, nil
}
