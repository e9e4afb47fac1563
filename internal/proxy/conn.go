package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// conn is one live connection to an upstream, as the call path uses it:
// raw requests in, raw results out.
type conn interface {
	call(ctx context.Context, id int64, method string, params json.RawMessage) (json.RawMessage, error)
	notify(method string, params json.RawMessage) error
	// closed is closed once the connection is lost; Err says why.
	closed() <-chan struct{}
	Err() error
	Close() error
}

// httpConn is a Streamable HTTP or SSE upstream, carried by mcp-go's
// transports.
type httpConn struct {
	name string
	tr   transport.Interface

	once sync.Once
	done chan struct{}
	err  error
}

func newHTTPConn(name, url string, headers map[string]string, log *slog.Logger) (*httpConn, error) {
	// http.DefaultTransport keeps two idle connections per host: concurrent
	// calls would dial the upstream again for most requests.
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	var tr transport.Interface
	var err error
	if isSSEURL(url) {
		tr, err = transport.NewSSE(url, transport.WithHeaders(headers), transport.WithSSELogger(log), transport.WithHTTPClient(hc))
	} else {
		tr, err = transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(headers), transport.WithHTTPLogger(log), transport.WithHTTPBasicClient(hc),
			// list_changed and other unsolicited notifications arrive on
			// the listening GET stream of the protocol the gate speaks
			// upstream (2025-11-25).
			//lint:ignore SA1019 upstreams are spoken to with the initialize handshake
			transport.WithContinuousListening())
	}
	if err != nil {
		return nil, err
	}
	return &httpConn{name: name, tr: tr, done: make(chan struct{})}, nil
}

// isSSEURL tells the legacy HTTP+SSE transport from Streamable HTTP by the
// conventional endpoint path.
func isSSEURL(url string) bool {
	path, _, _ := strings.Cut(url, "?")
	return strings.HasSuffix(path, "/sse")
}

// errClosed is why a connection the gate closed itself ended.
var errClosed = errors.New("closed")

func (h *httpConn) lost(err error) {
	h.once.Do(func() {
		h.err = err
		close(h.done)
	})
}

func (h *httpConn) call(ctx context.Context, id int64, method string, params json.RawMessage) (json.RawMessage, error) {
	req := transport.JSONRPCRequest{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Method: method}
	if params != nil {
		req.Params = params
	}
	resp, err := h.tr.SendRequest(ctx, req)
	if err != nil {
		if ctx.Err() == nil {
			// The transport failed, not the caller: reconnect.
			h.lost(err)
		}
		return nil, err
	}
	if resp.Error != nil {
		return nil, rpcErrorFrom(resp.Error)
	}
	return resp.Result, nil
}

func (h *httpConn) notify(method string, params json.RawMessage) error {
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: method}}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &n.Params); err != nil {
			return err
		}
	}
	return h.tr.SendNotification(context.Background(), n)
}

func (h *httpConn) closed() <-chan struct{} { return h.done }

func (h *httpConn) Err() error {
	select {
	case <-h.done:
		return h.err
	default:
		return nil
	}
}

func (h *httpConn) Close() error {
	h.lost(errClosed)
	return h.tr.Close()
}

// explainHTTP names the HTTP status behind mcp-go's "authorization
// required", which says neither the status nor what to check.
func explainHTTP(err error) error {
	var are *transport.AuthorizationRequiredError
	if errors.As(err, &are) || errors.Is(err, transport.ErrAuthorizationRequired) || errors.Is(err, transport.ErrUnauthorized) {
		return fmt.Errorf("HTTP 401 Unauthorized (check the upstream's headers in the policy, e.g. Authorization): %w", err)
	}
	return err
}
