package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"

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
	mux.Handle(StreamablePath, server.NewStreamableHTTPServer(p.srv,
		server.WithEndpointPath(StreamablePath),
		server.WithStreamableHTTPLogger(p.log),
	))
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
// Origin header must come from a loopback origin.
func originGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
			http.Error(w, "Forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
