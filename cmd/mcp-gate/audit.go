package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

const auditUsage = `Usage: mcp-gate audit verify FILE

Checks that every line of an audit log is a complete record chained to the
line before it. Prints "ok: N records, chain intact" and exits 0, or names
the first broken line as FILE:LINE: problem and exits 1.
`

// runAudit runs the audit subcommands: today only verify.
func runAudit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "verify" {
		fmt.Fprint(stderr, auditUsage)
		return exitError(2)
	}
	path := args[1]
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return exitError(1)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	var lineErr *audit.LineError
	switch {
	case errors.As(err, &lineErr):
		fmt.Fprintf(stderr, "%s:%d: %s\n", path, lineErr.Line, lineErr.Problem)
		return exitError(1)
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return exitError(1)
	}
	fmt.Fprintf(stdout, "ok: %d records, chain intact\n", n)
	return nil
}
