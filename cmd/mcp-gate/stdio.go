package main

import (
	"context"
	"io"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

// runStdio serves MCP on stdin/stdout in front of the upstream(s). stdout
// carries only MCP messages; logs and upstream stderr go to stderr. Help
// and usage errors come before serving starts.
func runStdio(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, f := stdioFlags()
	if err := cmdline.Parse(fs, args, usage, stdout, stderr); err != nil {
		return err
	}
	cmd, err := upstreamCommand(fs, args, usage, stderr)
	if err != nil {
		return err
	}
	p, err := newGateway(ctx, f, cmd, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	p.log.Debug("serving MCP on stdio")
	return p.ServeStdio(ctx, stdin, stdout)
}
