package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// HTTP endpoint paths.
const (
	StreamablePath = "/mcp"     // Streamable HTTP
	SSEPath        = "/sse"     // legacy HTTP+SSE: the event stream
	MessagePath    = "/message" // legacy HTTP+SSE: client messages
)

// HTTPHandler serves Streamable HTTP at /mcp and the legacy SSE transport at
// /sse and /message. Each client session has its own state in mcp-go's
// session; upstreams are shared.
//
// Two protections stay on: mcp-go refuses a request that reached a loopback
// listener with a Host header that is not loopback (DNS rebinding), and this
// handler refuses any request whose Origin header names a site other than a
// loopback one, so a web page cannot drive the gate from a browser.
func (p *Proxy) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(StreamablePath, &directHTTP{p: p, next: server.NewStreamableHTTPServer(p.srv,
		server.WithEndpointPath(StreamablePath),
		server.WithStreamableHTTPLogger(p.log),
	)})
	sse := server.NewSSEServer(p.srv,
		server.WithSSEEndpoint(SSEPath),
		server.WithMessageEndpoint(MessagePath),
		server.WithUseFullURLForMessageEndpoint(false),
	)
	mux.Handle(SSEPath, sse)
	mux.Handle(MessagePath, sse)
	return originGuard(mux)
}

// originGuard refuses cross-site browser requests: a request that carries an
// Origin header must come from a loopback origin. It also refuses, as
// mcp-go does behind it, a request that reached a loopback listener under a
// name that is not loopback (DNS rebinding), because the direct path below
// answers some requests without mcp-go.
func originGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
			http.Error(w, "Forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && loopbackHost(local.String()) && !loopbackHost(r.Host) {
			http.Error(w, "Forbidden: invalid Host header", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && loopbackHost(u.Host)
}

// loopbackHost reports whether host (with or without a port) names a
// loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// maxBody bounds a request body read by the direct path.
const maxBody = 32 << 20

// directHTTP answers plain tools/call POSTs of established 2025-11-25
// sessions itself, with the upstream's raw result as a JSON response, and
// hands every other request to mcp-go's Streamable HTTP server. A call with
// a progress token takes mcp-go's path, which streams the notifications.
type directHTTP struct {
	p    *Proxy
	next http.Handler
}

func (d *directHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get(server.HeaderKeySessionID)
	if r.Method != http.MethodPost || sid == "" {
		d.next.ServeHTTP(w, r)
		return
	}
	session, ok := d.p.sessions.Load(sid)
	if !ok {
		d.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var h head
	var cp *toolCallParams
	if json.Unmarshal(body, &h) == nil && h.Method == string(mcp.MethodToolsCall) && len(h.ID) > 0 {
		cp, ok = directParams(h.Params, false)
	}
	if cp == nil || !ok || cp.m.ProgressToken != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		d.next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	var out []byte
	c, err := d.p.newCall(ctx, cp.Name, cp.Arguments, cp.Meta)
	if err == nil {
		c.SessionID = sid
		c.Client = clientInfo(ctx, session.(server.ClientSession))
		var res Result
		if res, err = d.p.call(ctx, c); err == nil {
			out = resultLine(h.ID, res)
		}
	}
	if err != nil {
		out = errorLine(h.ID, err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
