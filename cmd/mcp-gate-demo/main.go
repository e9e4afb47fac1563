// Command mcp-gate-demo runs mcp-gate's main job end to end with no Azure
// tenant: it starts the PIM emulator as a stand-in for Microsoft Graph,
// starts mcp-gate with a demo policy in front of the demo upstream, drives it
// with a real MCP client and prints a timeline of what the gate did. It
// exits non-zero as soon as a step does not behave as described.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

//go:embed scenario.yaml
var scenarioYAML []byte

//go:embed policy.yaml.tmpl
var policyTemplate string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cmdline.Code("mcp-gate-demo", os.Stderr, err))
}

const usage = `Usage: mcp-gate-demo [--bin DIR] [--keep] [--hold] [-v]

Runs mcp-gate's main job end to end with no Azure tenant: a local PIM
emulator stands in for Microsoft Graph, mcp-gate runs with a demo policy in
front of a demo database server, and a real MCP client drives it. Prints a
timeline and exits 0 only if every step behaved as described. Its files
(policy, audit log, the emulator's scenario, CA and token) go to a
temporary directory, removed at the end unless --keep is given. The
approvals page is served on a loopback port during the run (its address is
printed); --hold keeps the emulator, mcp-gate and the page up after the
timeline until interrupted, so a person can look.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate-demo", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "`directory` holding mcp-gate, pim-emulator and test-upstream")
	keep := fs.Bool("keep", false, "keep the demo's files (policy, audit log, the emulator's scenario, CA and token) after the run")
	verbose := fs.Bool("v", false, "show mcp-gate's and the emulator's logs")
	hold := fs.Bool("hold", false, "keep the emulator, mcp-gate and its approvals page up after the timeline, until interrupted")
	if err := cmdline.Parse(fs, args, usage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.UsageError(stderr, fs, usage, fmt.Sprintf("mcp-gate-demo: unexpected argument %q", fs.Arg(0)))
	}
	dir, err := os.MkdirTemp("", "mcp-gate-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logs := io.Discard
	if *verbose {
		logs = stderr
	}
	d := &demo{bin: *bin, dir: dir, keep: *keep, hold: *hold, out: stdout, logs: logs}
	return d.run(ctx)
}
