package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/mcp-gate/mcp-gate/internal/policy"
)

// runExplain shows how the policy decides one call: the deciding rule and
// its line, the action, role and grant, and the rules tried before it.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("policy", defaultPolicyFile, "policy file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mcp-gate explain [--policy policies.yaml] TOOL ['{"arg":"value"}']`)
	}
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return exitError(2)
	}
	tool := fs.Arg(0)
	var callArgs map[string]any
	if fs.NArg() == 2 {
		if err := json.Unmarshal([]byte(fs.Arg(1)), &callArgs); err != nil {
			return fmt.Errorf("explain: arguments must be a JSON object: %w", err)
		}
	}
	p, _, err := loadPolicy(*file, stderr)
	if err != nil {
		return err
	}
	ex := p.Explain(tool, callArgs)
	fmt.Fprintf(stdout, "tool:     %s\n", tool)
	fmt.Fprint(stdout, ex)
	if d := ex.Decision; d.Action == policy.Activate {
		// Shows what approvers would read, or which argument is missing.
		just, ticket, err := d.Justify(policy.Call{Tool: tool, Args: callArgs})
		if err != nil {
			fmt.Fprintf(stdout, "this call: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "this call: justification %q, ticket %q\n", just, ticket)
		}
	}
	return nil
}
