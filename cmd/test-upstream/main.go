// Command test-upstream is a small MCP server for testing and benchmarking
// mcp-gate: tools that echo, sleep, emit progress, fail, crash and change the
// tool list, served on stdio or Streamable HTTP (and optionally SSE); with
// --conformance, also the fixtures of the official MCP conformance suite's
// server scenarios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/testupstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Exit)
	stop()
	os.Exit(cmdline.Code("test-upstream", os.Stderr, err))
}

const usage = `Usage: test-upstream [flags]

A small MCP server for testing and benchmarking mcp-gate: tools that echo,
sleep, emit progress, fail, crash and change the tool list, served on stdio
or Streamable HTTP (and optionally SSE).
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, exit func(int)) error {
	fs := flag.NewFlagSet("test-upstream", flag.ContinueOnError)
	transport := fs.String("transport", "stdio", "stdio or http")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on with --transport http")
	addrFile := fs.String("addr-file", "", "with --transport http, write the bound host:port to this file")
	name := fs.String("name", "test-upstream", "server name, reported by initialize and the whoami tool")
	sse := fs.Bool("sse", false, "with --transport http, also serve SSE at /sse and /message")
	demo := fs.Bool("demo", false, "also offer the demo tools read_table, delete_database, send_payment, deploy, restart_app, calls and arguments")
	conformance := fs.Bool("conformance", false, "also offer the tools, resources and prompts the official MCP conformance suite's server scenarios call")
	auditLog := fs.String("audit-log", "", "also offer the audited tool, which reports whether this audit log already holds the record admitting the call")
	if err := cmdline.Parse(fs, args, usage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.UsageError(stderr, fs, usage, fmt.Sprintf("test-upstream: unexpected argument %q", fs.Arg(0)))
	}
	srv := testupstream.New(testupstream.Options{Name: *name, Stderr: stderr, Exit: exit, Clock: clock.Real{}})
	if *demo {
		srv.AddDemoTools()
	}
	if *conformance {
		srv.AddConformance()
	}
	if *auditLog != "" {
		srv.AddAuditProbe(*auditLog)
	}
	switch *transport {
	case "stdio":
		return srv.ServeStdio(ctx, stdin, stdout)
	case "http":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		addr := ln.Addr().String()
		if *addrFile != "" {
			if err := writeAddr(*addrFile, addr); err != nil {
				ln.Close()
				return err
			}
		}
		fmt.Fprintf(stderr, "listening on http://%s%s\n", addr, testupstream.StreamablePath)
		return srv.ServeHTTP(ctx, ln, *sse)
	default:
		return errors.New("--transport must be stdio or http")
	}
}

// writeAddr writes atomically so a reader polling for the file never sees a
// partial address.
func writeAddr(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return fmt.Errorf("write addr file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write addr file: %w", err)
	}
	return nil
}
