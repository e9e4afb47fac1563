// Package loopback tells loopback names and addresses apart from others, for
// the DNS-rebinding and Origin checks of the gate's HTTP listeners (the MCP
// front and the approvals page).
package loopback

import (
	"net"
	"net/http"
	"strings"
)

// Host reports whether host (with or without a port) names a loopback
// interface.
func Host(host string) bool {
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

// Rebound reports whether r reached a loopback listener under a name that
// is not loopback: a DNS-rebinding attempt, since a page of another site
// can resolve its own name to 127.0.0.1.
func Rebound(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && Host(local.String()) && !Host(r.Host)
}
