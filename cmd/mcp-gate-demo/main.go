// Command mcp-gate-demo runs mcp-gate's main job end to end with no Azure
// tenant: it starts the PIM emulator as a stand-in for Microsoft Graph,
// starts mcp-gate with a demo policy in front of the demo upstream, drives it
// with a real MCP client and prints a timeline of what the gate did. It
// exits non-zero as soon as a step does not behave as described.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

//go:embed scenario.yaml
var scenarioYAML []byte

//go:embed policy.yaml.tmpl
var policyTemplate string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "mcp-gate-demo: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory holding mcp-gate, pim-emulator and test-upstream")
	keep := fs.Bool("keep", false, "keep the demo's working directory (policy, audit log, emulator CA)")
	verbose := fs.Bool("v", false, "show mcp-gate's and the emulator's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mcp-gate-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "working directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logs := io.Discard
	if *verbose {
		logs = stderr
	}
	d := &demo{bin: *bin, dir: dir, out: stdout, logs: logs}
	return d.run(ctx)
}
