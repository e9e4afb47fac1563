package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

const auditUsage = `Usage: mcp-gate audit verify FILE

Checks that every line of an audit log is a complete record chained to the
line before it, and that the log still holds the records its checkpoint
(FILE.head, which mcp-gate keeps current) counts, so records cut from the
end show too. Prints "ok: N records, chain intact, ..." and exits 0, or
names the first broken line as FILE:LINE: problem, or how the log disagrees
with its checkpoint, and exits 1. Someone who can write both files can
rewrite both: the checkpoint shows truncation and accidental loss, not a
forger with write access.
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

// verifyAudit checks the hash chain of the audit log at path, and the log
// against its checkpoint when it has one.
func verifyAudit(path string, stdout, stderr io.Writer) error {
	headPath := audit.CheckpointPath(path)
	// The checkpoint first: a gate writes the log before its checkpoint, so
	// a live log read after it is never behind it.
	cp, cpErr := audit.ReadCheckpoint(headPath)
	noCheckpoint := errors.Is(cpErr, fs.ErrNotExist)
	if cpErr != nil && !noCheckpoint {
		fmt.Fprintf(stderr, "%s: %v\n", path, cpErr)
		return cmdline.ExitError(1)
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return cmdline.ExitError(1)
	}
	defer f.Close()
	var n int
	if noCheckpoint {
		n, err = audit.Verify(f)
	} else {
		n, err = audit.VerifyCheckpoint(f, cp)
	}
	var lineErr *audit.LineError
	switch {
	case errors.As(err, &lineErr):
		fmt.Fprintf(stderr, "%s:%d: %s\n", path, lineErr.Line, lineErr.Problem)
		return cmdline.ExitError(1)
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return cmdline.ExitError(1)
	}
	switch {
	case noCheckpoint:
		fmt.Fprintf(stdout, "ok: %d records, chain intact; no checkpoint %s, so records cut from the end would not show\n", n, headPath)
	case int64(n) > cp.Records:
		fmt.Fprintf(stdout, "ok: %d records, chain intact; the first %d match the checkpoint, the rest were written after it\n", n, cp.Records)
	default:
		fmt.Fprintf(stdout, "ok: %d records, chain intact, checkpoint matches\n", n)
	}
	return nil
}
