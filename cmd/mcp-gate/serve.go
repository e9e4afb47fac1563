package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// shutdownGrace bounds how long open HTTP streams may delay shutdown.
const shutdownGrace = 5 * time.Second

const serveUsage = `Usage: mcp-gate serve [--listen ADDR] [flags] [-- COMMAND ARGS...]

Serves MCP over Streamable HTTP at ` + proxy.StreamablePath + ` and legacy SSE at ` + proxy.SSEPath + ` and ` + proxy.MessagePath + `,
in front of the command after --, the --upstream flags or the policy's upstreams:.
Every HTTP client acts as the gate's one PIM principal: serve one user.
`

// runServe serves Streamable HTTP (and SSE) until ctx is cancelled.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to serve HTTP on; keep it loopback unless a trusted proxy fronts the gate")
	var f proxyFlags
	f.register(fs)
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
	if len(p.gating.policy.Load().Roles()) > 0 {
		// Activations are made with the gate's one credential, so whoever
		// can reach this address shares its principal's grants.
		p.log.Warn("every HTTP client acts as the gate's own PIM principal and shares its grants: serve one user, on loopback or behind an authenticating proxy")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: p.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
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
