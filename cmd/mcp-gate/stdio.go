package main

import (
	"context"
	"flag"
	"io"
)

// runStdio serves MCP on stdin/stdout in front of the upstream(s). stdout
// carries only MCP messages; logs and upstream stderr go to stderr.
func runStdio(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p, err := newGateway(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	p.log.Debug("serving MCP on stdio")
	return p.ServeStdio(ctx, stdin, stdout)
}
