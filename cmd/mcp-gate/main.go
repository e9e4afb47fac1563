// Command mcp-gate is an MCP server that stands between an AI client and its
// upstream MCP servers and holds dangerous tool calls until a Microsoft Entra
// PIM role is activated for the calling user.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitError carries a process exit status without a message of its own; the
// command has already said what went wrong.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var code exitError
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintf(stderr, "mcp-gate: %v\n", err)
	return 1
}

// run is the whole program behind main, with its environment passed in so
// tests can drive it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runServe(ctx, args[1:], stdout, stderr)
		case "check":
			return runCheck(ctx, args[1:], stdout, stderr)
		case "explain":
			return runExplain(ctx, args[1:], stdout, stderr)
		case "audit":
			return runAudit(ctx, args[1:], stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, "mcp-gate", version)
			return nil
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	return runStdio(ctx, args, stdin, stdout, stderr)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mcp-gate: an MCP gateway that holds privileged tool calls until an Entra PIM role is active.

Usage:
  mcp-gate [--policy policies.yaml] [-- COMMAND ARGS...]   serve MCP on stdio
  mcp-gate serve --listen 127.0.0.1:8080 [...]            serve Streamable HTTP and SSE
  mcp-gate check [policies.yaml]                           validate a policy file
  mcp-gate explain --policy FILE TOOL ['{"arg":"v"}']      show which rule decides a call
  mcp-gate audit verify FILE                               check an audit log's hash chain
  mcp-gate version
`
