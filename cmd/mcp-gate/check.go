package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

const defaultPolicyFile = "policies.yaml"

const checkUsage = `Usage: mcp-gate check [policies.yaml]

Validates a policy file (default ` + defaultPolicyFile + `): prints every problem as
file:line:col: message and exits 1 if any is an error; else prints
"ok: N rules" (with the number of warnings) and exits 0.
`

// runCheck validates a policy file: every problem as file:line:col, exit
// status 1 when any is an error, one "ok" line otherwise.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate check", flag.ContinueOnError)
	if err := cmdline.Parse(fs, args, checkUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return cmdline.UsageError(stderr, fs, checkUsage, "mcp-gate check: one policy file at a time")
	}
	file := defaultPolicyFile
	if fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	p, problems, err := loadPolicy(file, stdout)
	if err != nil {
		return err
	}
	warnings := ""
	if n := len(problems); n > 0 {
		warnings = fmt.Sprintf(" (%d warning%s)", n, plural(n))
	}
	fmt.Fprintf(stdout, "ok: %d rule%s%s\n", p.Rules(), plural(p.Rules()), warnings)
	return nil
}

// loadPolicy loads file and prints its problems to w. An invalid file
// yields ExitError(1), the problems having been printed already.
func loadPolicy(file string, w io.Writer) (*policy.Policy, []policy.Problem, error) {
	p, problems, err := policy.Load(file)
	for _, pr := range problems {
		fmt.Fprintln(w, pr)
	}
	var invalid *policy.ValidationError
	if errors.As(err, &invalid) {
		return nil, nil, cmdline.ExitError(1)
	}
	if err != nil {
		return nil, nil, err
	}
	return p, problems, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
