package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

const auditUsage = `Usage: mcp-gate audit verify FILE

Checks that every line of an audit log is a complete record chained to the
line before it. Prints "ok: N records, chain intact" and exits 0, or names
the first broken line as FILE:LINE: problem and exits 1.
`

// runAudit runs the audit subcommands: today only verify.
func runAudit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate audit", flag.ContinueOnError)
	if err := cmdline.Parse(fs, args, auditUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 || fs.Arg(0) != "verify" {
		return cmdline.UsageError(stderr, fs, auditUsage, "mcp-gate audit: want verify FILE")
	}
	fs = flag.NewFlagSet("mcp-gate audit verify", flag.ContinueOnError)
	if err := cmdline.Parse(fs, args[1:], auditUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cmdline.UsageError(stderr, fs, auditUsage, "mcp-gate audit verify: want one audit log file")
	}
	return verifyAudit(fs.Arg(0), stdout, stderr)
}

// verifyAudit checks the hash chain of the audit log at path.
func verifyAudit(path string, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return cmdline.ExitError(1)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	var lineErr *audit.LineError
	switch {
	case errors.As(err, &lineErr):
		fmt.Fprintf(stderr, "%s:%d: %s\n", path, lineErr.Line, lineErr.Problem)
		return cmdline.ExitError(1)
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return cmdline.ExitError(1)
	}
	fmt.Fprintf(stdout, "ok: %d records, chain intact\n", n)
	return nil
}
