package policy

import (
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var uiKeys = []string{"listen", "adminRole"}

// UI is the ui: section: the read-only approvals page (package ui). The
// zero value (no section) serves no page.
type UI struct {
	// Listen is the address the page is served on, host:port. A missing
	// host means 127.0.0.1; port 0 picks a free port (the log says which).
	Listen string
	// AdminRole is the app role (a value of the token's roles claim) whose
	// holders see every user's items when serve.auth is set; others see
	// their own. Empty: nobody sees others' items.
	AdminRole string
}

// Enabled reports whether the page is to be served.
func (u UI) Enabled() bool { return u.Listen != "" }

// UI returns the ui: section.
func (p *Policy) UI() UI { return p.ui }

func (ps *parser) uiSection(n *yaml.Node) {
	ps.uiNode = n
	ps.fields(n, "ui", uiKeys, func(key string, k, v *yaml.Node) {
		at := join("ui", key)
		switch key {
		case "listen":
			ps.p.ui.Listen = ps.listen(v, at)
		case "adminRole":
			if s, ok := ps.str(v, at, false); ok && (strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t")) {
				ps.errorf(v, "%s: want one app role value, e.g. mcp-gate.admin", at)
			} else {
				ps.p.ui.AdminRole = s
			}
		}
	})
}

// listen checks a host:port, filling in the loopback host when it is
// missing.
func (ps *parser) listen(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, false)
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
		ps.errorf(n, "%s: %q is not host:port, e.g. 127.0.0.1:8765 or :8765 (loopback)", where, s)
		return ""
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// uiNeedsAuthOffLoopback refuses a page served beyond loopback without
// serve.auth: it would show anyone who can reach it who waits for which
// role. adminRole without serve.auth has no token to be read from.
func (ps *parser) uiNeedsAuthOffLoopback() {
	u := ps.p.ui
	if ps.uiNode == nil || ps.p.serveAuth.Enabled() {
		return
	}
	if host, _, err := net.SplitHostPort(u.Listen); err == nil && !isLoopback(host) {
		ps.errorf(ps.uiNode, "ui.listen %s is not a loopback address: without serve.auth anyone who reaches it sees every user's waiting calls and grants; listen on 127.0.0.1 or set serve.auth", u.Listen)
	}
	if u.AdminRole != "" {
		ps.warnf(ps.uiNode, "ui.adminRole is only read from serve.auth's tokens: without serve.auth the page shows everything to whoever reaches it on loopback")
	}
}
