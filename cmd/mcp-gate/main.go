// Command mcp-gate is an MCP server that stands between an AI client and its
// upstream MCP servers and holds dangerous tool calls until a Microsoft Entra
// PIM role is activated for the calling user.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

func main() {
	stopProfile := cmdline.StartCPUProfile(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	stopProfile()
	os.Exit(exitCode(os.Stderr, err))
}

func exitCode(stderr io.Writer, err error) int { return cmdline.Code("mcp-gate", stderr, err) }

// command is a subcommand: it gets the arguments after its name.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands are the words mcp-gate takes as its first argument; anything
// else serves MCP on stdio.
var commands map[string]command

func init() { // a literal would refer to itself through runHelp
	commands = map[string]command{
		"serve":   runServe,
		"check":   runCheck,
		"explain": runExplain,
		"audit":   runAudit,
		"login":   runLogin,
		"doctor":  runDoctor,
		"version": runVersion,
		"help":    runHelp,
	}
}

// run is the whole program behind main, with its environment passed in so
// tests can drive it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(ctx, args[1:], stdout, stderr)
		}
	}
	return runStdio(ctx, args, stdin, stdout, stderr)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mcp-gate: an MCP gateway that holds privileged tool calls until an Entra PIM role is active.

Usage:
  mcp-gate [flags] [-- COMMAND ARGS...]              serve MCP on stdio
  mcp-gate serve [--listen ADDR] [flags] [-- ...]    serve Streamable HTTP and SSE
  mcp-gate check [policies.yaml]                     validate a policy file
  mcp-gate explain [--policy FILE] TOOL ['{"arg":"v"}']  show which rule decides a call
  mcp-gate login [--policy FILE]                     sign in once (credential browser or devicecode)
  mcp-gate doctor [--policy FILE]                    check sign-in, permissions, every role; exit 1 on a blocker
  mcp-gate audit verify FILE                         check an audit log's chain and checkpoint
  mcp-gate version                                   print the version
  mcp-gate help [COMMAND]                            this help, or a command's (as COMMAND --help)

The upstreams come from exactly one of: the command after --, the --upstream
flags, the policy's upstreams: section. Nothing before -- is run.
The flags below are those of stdio mode and serve.
`

// runHelp prints the help, or a command's.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, _ := stdioFlags()
	switch {
	case len(args) == 0 || len(args) == 1 && slices.Contains([]string{"-h", "-help", "--help"}, args[0]):
		cmdline.PrintHelp(stdout, fs, usage)
		return nil
	case len(args) == 1 && commands[args[0]] != nil:
		return commands[args[0]](ctx, []string{"--help"}, stdout, stderr)
	}
	return cmdline.UsageError(stderr, fs, usage, fmt.Sprintf("mcp-gate help: want one of %s", strings.Join(slices.Sorted(maps.Keys(commands)), ", ")))
}

const versionUsage = `Usage: mcp-gate version

Prints mcp-gate's version.
`

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate version", flag.ContinueOnError)
	if err := cmdline.Parse(fs, args, versionUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.UsageError(stderr, fs, versionUsage, "mcp-gate version: takes no arguments")
	}
	fmt.Fprintln(stdout, "mcp-gate", version)
	return nil
}
