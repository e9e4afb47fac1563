package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/mcp-gate/mcp-gate/internal/callargs"
	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

const explainUsage = `Usage: mcp-gate explain [--policy policies.yaml] TOOL ['{"arg":"value"}']

Shows how the policy decides a call of TOOL with those arguments: the
deciding rule and its line, the action, role and grant, and the rules
tried before it.
`

// runExplain shows how the policy decides one call: the deciding rule and
// its line, the action, role and grant, and the rules tried before it.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate explain", flag.ContinueOnError)
	file := fs.String("policy", defaultPolicyFile, "policy `file`")
	if err := cmdline.Parse(fs, args, explainUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return cmdline.UsageError(stderr, fs, explainUsage, "mcp-gate explain: want a tool name and, optionally, its arguments")
	}
	tool := fs.Arg(0)
	var raw json.RawMessage
	if fs.NArg() == 2 {
		raw = json.RawMessage(fs.Arg(1))
	}
	parsed, err := callargs.Parse(raw)
	if err != nil {
		return fmt.Errorf("explain: the gate would refuse this call: %w", err)
	}
	callArgs := parsed.Object()
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
