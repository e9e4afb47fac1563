package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/mcp-gate/mcp-gate/internal/authn"
	"github.com/mcp-gate/mcp-gate/internal/ui"
)

// serveUI serves the approvals page on ui.listen when the policy asks for
// it, behind serve.auth when that is set; stop ends it.
func serveUI(g *gateway) (stop func(), err error) {
	pol := g.gating.started
	u, sa := pol.UI(), pol.ServeAuth()
	if g.gating.board == nil {
		return func() {}, nil
	}
	cfg := ui.ServerConfig{Board: g.gating.board, AdminRole: u.AdminRole, Logger: g.log}
	if sa.Enabled() {
		v, err := authn.New(authn.Config{Authority: sa.Authority, TenantID: sa.TenantID, Audiences: []string{sa.Audience}, CAFile: sa.CAFile})
		if err != nil {
			return nil, fmt.Errorf("serve.auth: %w", err)
		}
		cfg.Validator, cfg.Scope = v, sa.Scope
	}
	ln, err := net.Listen("tcp", u.Listen)
	if err != nil {
		return nil, fmt.Errorf("ui.listen: %w", err)
	}
	// No WriteTimeout: it would cut the page's event streams.
	srv := &http.Server{Handler: ui.NewServer(cfg), ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	g.log.Info("serving the approvals page", "url", "http://"+ln.Addr().String()+ui.PagePath, "auth", sa.Enabled())
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
