package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

// passthroughCommand is the argument that makes this binary the bench's
// peer instead of the bench: a plain pass-through built from mcp-go's client
// and server, with no policy and no audit, the way a naive MCP proxy is
// written. Measured beside the gate, it shows what the gate costs over a
// proxy that does less.
const passthroughCommand = "passthrough"

const passthroughUsage = `Usage: mcp-gate-bench passthrough [--listen ADDR] (--upstream URL | -- COMMAND ARGS...)

The bench's peer: a plain mcp-go pass-through (mcp-go's client to the
upstream, mcp-go's server to the client, each upstream tool re-registered
with a handler that calls it), with no policy and no audit. It serves stdio,
or Streamable HTTP at /mcp with --listen.
`

// passthroughAnnounce is how the HTTP pass-through says where it listens.
const passthroughAnnounce = "passthrough streamable=http://%s/mcp\n"

func runPassthrough(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate-bench passthrough", flag.ContinueOnError)
	listen := fs.String("listen", "", "`address` to serve Streamable HTTP on; default: serve stdio")
	upstreamURL := fs.String("upstream", "", "Streamable HTTP `URL` of the upstream; default: the command after --")
	if err := cmdline.Parse(fs, args, passthroughUsage, stdout, stderr); err != nil {
		return err
	}
	var up *client.Client
	var err error
	switch {
	case *upstreamURL != "" && fs.NArg() == 0:
		up, err = client.NewStreamableHttpClient(*upstreamURL, transport.WithHTTPBasicClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}))
		if err == nil {
			err = up.Start(ctx)
		}
	case *upstreamURL == "" && fs.NArg() > 0:
		up, err = client.NewStdioMCPClientWithOptions(fs.Arg(0), nil, fs.Args()[1:], transport.WithCommandStderrWriter(stderr))
	default:
		return cmdline.UsageError(stderr, fs, passthroughUsage, "mcp-gate-bench passthrough: want either --upstream or a command after --")
	}
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	defer up.Close()
	// The gate speaks 2025-11-25 to its upstreams; so does its peer.
	if err := initialize(ctx, up, legacy); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	tools, err := up.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	srv := server.NewMCPServer("mcp-gate-bench-passthrough", "1", server.WithToolCapabilities(false))
	for _, t := range tools.Tools {
		srv.AddTool(t, func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			// The name and arguments only: the client's _meta names its
			// own protocol version, not the one spoken upstream.
			var fwd mcp.CallToolRequest
			fwd.Params.Name, fwd.Params.Arguments = req.Params.Name, req.Params.Arguments
			return up.CallTool(ctx, fwd)
		})
	}

	if *listen == "" {
		err := server.NewStdioServer(srv).Listen(ctx, stdin, stdout)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: server.NewStreamableHTTPServer(srv)}
	fmt.Fprintf(stderr, passthroughAnnounce, ln.Addr())
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		return hs.Close()
	}
}

// self is this binary, which runs the peer (see passthroughCommand).
func self() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("the pass-through peer runs this binary: %w", err)
	}
	return path, nil
}
