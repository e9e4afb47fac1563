package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/authn"
	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// shutdownGrace bounds how long open HTTP streams may delay shutdown.
const shutdownGrace = 5 * time.Second

// The HTTP server's bounds on a connection: its request headers must
// arrive within readHeaderTimeout, and a keep-alive connection with no
// request is closed after idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

const serveUsage = `Usage: mcp-gate serve [--listen ADDR] [flags] [-- COMMAND ARGS...]

Serves MCP over Streamable HTTP at ` + proxy.StreamablePath + ` and legacy SSE at ` + proxy.SSEPath + ` and ` + proxy.MessagePath + `,
in front of the command after --, the --upstream flags or the policy's upstreams:.
Without serve.auth: in the policy, every HTTP client acts as the gate's one
PIM principal: serve one user. With it, each request must carry the caller's
Entra access token, and each call acts for that user (activating roles with
their own Graph token under approvals.credential: onbehalfof).
`

// runServe serves Streamable HTTP (and SSE) until ctx is cancelled.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to serve HTTP on; keep it loopback unless a trusted proxy fronts the gate")
	metricsListen := fs.String("metrics-listen", "", "`address` to serve "+metricsPath+", "+healthzPath+" and "+readyzPath+" on, keeping metrics off the MCP port; default: all on --listen")
	var f proxyFlags
	f.register(fs)
	f.bounds.register(fs)
	if err := cmdline.Parse(fs, args, serveUsage, stdout, stderr); err != nil {
		return err
	}
	cmd, err := upstreamCommand(fs, args, serveUsage, stderr)
	if err != nil {
		return err
	}
	p, err := newGateway(ctx, &f, cmd, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	handler := p.HTTPHandler()
	switch sa := p.gating.started.ServeAuth(); {
	case sa.Enabled():
		var v *authn.Validator
		if handler, v, err = authenticated(sa, handler, p.gating.obo, p.log); err != nil {
			return err
		}
		p.tokenKeys = v.Ready
		if len(p.gating.started.Roles()) > 0 && p.gating.obo == nil {
			p.log.Warn("serve.auth: each call acts for its caller, but roles are activated with the gate's own credential: only that credential's user can activate; other users' gated calls are refused")
		}
	case len(p.gating.policy.Load().Roles()) > 0:
		// Activations are made with the gate's one credential, so whoever
		// can reach this address shares its principal's grants.
		p.log.Warn("every HTTP client acts as the gate's own PIM principal and shares its grants: serve one user, on loopback or behind an authenticating proxy, or set serve.auth in the policy")
	}

	// The probes answer without a token: kubelets and load balancers have none.
	mux := http.NewServeMux()
	p.opsRoutes(mux, *metricsListen == "")
	mux.Handle("/", handler)
	if *metricsListen != "" {
		stop, err := serveOps(p, *metricsListen)
		if err != nil {
			return err
		}
		defer stop()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// No ReadTimeout: it would cut the long-lived event streams; the proxy
	// bounds each request body's read itself (--body-timeout).
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	p.log.Info("serving MCP over HTTP", "streamable", "http://"+ln.Addr().String()+proxy.StreamablePath,
		"sse", "http://"+ln.Addr().String()+proxy.SSEPath)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	// Long-lived streams (SSE, GET listeners) keep Shutdown waiting; close
	// whatever is left once the grace period is over.
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_ = srv.Close()
	return nil
}

// authenticated puts next behind serve.auth: each request's Entra token is
// validated (by the Validator it returns) and its oid becomes the principal
// of the calls it carries. With on-behalf-of activation (obo not nil) the
// token is what that principal's activations are made with.
func authenticated(sa policy.ServeAuth, next http.Handler, obo *pim.OnBehalfOf, log *slog.Logger) (http.Handler, *authn.Validator, error) {
	v, err := authn.New(authn.Config{Authority: sa.Authority, TenantID: sa.TenantID, Audiences: []string{sa.Audience}, CAFile: sa.CAFile})
	if err != nil {
		return nil, nil, fmt.Errorf("serve.auth: %w", err)
	}
	g := authn.NewGuard(authn.GuardConfig{Validator: v, Endpoint: proxy.StreamablePath, Scope: sa.Scope, Resource: sa.Resource, Logger: log})
	log.Info("serve.auth: HTTP clients must present an Entra access token", "tenant", sa.TenantID, "audience", sa.Audience, "authority", sa.Authority)
	return g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := authn.IdentityFrom(r.Context()) // the guard admits no request without one
		ctx := proxy.WithPrincipal(r.Context(), id.OID)
		if obo != nil {
			tok, _ := authn.TokenFrom(ctx)
			if err := obo.Remember(id.OID, tok); err != nil {
				log.Error("on-behalf-of: cannot keep the caller's token", "error", err)
				http.Error(w, "Service unavailable: the gate cannot act on your behalf now", http.StatusServiceUnavailable)
				return
			}
			ctx = pim.WithCaller(ctx, id.OID)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})), v, nil
}

// serveOps serves the operations endpoints on their own address until stop.
func serveOps(p *gateway, addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	p.opsRoutes(mux, true)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	p.log.Info("serving metrics and probes", "metrics", "http://"+ln.Addr().String()+metricsPath)
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
