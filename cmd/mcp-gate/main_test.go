package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allowAll writes a policy that allows every call, with its audit log in a
// temporary directory, and returns its path.
func allowAll(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "allow-all.yaml")
	src := "version: 1\naudit:\n  path: " + filepath.Join(dir, "audit.jsonl") + "\ntools:\n  \"*\": allow\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCommandLine runs mcp-gate's entry point as main does and checks the
// exit status and where each word goes: help on stdout, usage errors on
// stderr. stdin is empty, so a case that wrongly started serving would end
// at once with status 0 and fail on its status.
func TestCommandLine(t *testing.T) {
	policy := allowAll(t)
	everyFlagAndCommand := []string{"--policy", "--log-level", "--upstream", "--init-wait", "mcp-gate serve", "mcp-gate check", "mcp-gate explain", "mcp-gate audit verify", "mcp-gate version", "mcp-gate help"}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // pieces; none means stdout must be empty
		wantStderr []string // pieces; none means stderr must be empty
	}{
		{"-h", []string{"-h"}, 0, everyFlagAndCommand, nil},
		{"--help", []string{"--help"}, 0, everyFlagAndCommand, nil},
		{"-help", []string{"-help"}, 0, everyFlagAndCommand, nil},
		{"help", []string{"help"}, 0, everyFlagAndCommand, nil},
		{"help after flags", []string{"--policy", policy, "--help"}, 0, everyFlagAndCommand, nil},
		{"help help", []string{"help", "help"}, 0, everyFlagAndCommand, nil},
		{"unknown word", []string{"bogus"}, 2, nil, []string{`mcp-gate: unknown command "bogus": an upstream command goes after --, as in mcp-gate [flags] -- bogus`, "Usage:", "--policy"}},
		{"misspelt command after flags", []string{"--policy", policy, "verison"}, 2, nil, []string{`mcp-gate: unknown command "verison" (did you mean version?)`, "Usage:"}},
		{"misspelt command", []string{"chek", "policies.yaml"}, 2, nil, []string{`unknown command "chek" (did you mean check?)`}},
		{"command after flags", []string{"--policy", policy, "serve"}, 2, nil, []string{`"serve" is a command of its own and comes first: mcp-gate serve`}},
		{"flag value taken for --", []string{"--policy=--", "npx"}, 2, nil, []string{`unknown command "npx"`}},
		{"unknown flag", []string{"--polcy", policy}, 2, nil, []string{"flag provided but not defined: -polcy", "Usage:"}},
		{"bad --upstream", []string{"--upstream", "nameonly"}, 2, nil, []string{`invalid value "nameonly" for flag -upstream: want NAME=COMMAND or NAME=URL`}},
		{"version", []string{"version"}, 0, []string{"mcp-gate dev\n"}, nil},
		{"version with an argument", []string{"version", "x"}, 2, nil, []string{"mcp-gate version: takes no arguments", "Usage: mcp-gate version"}},
		{"help of an unknown command", []string{"help", "bogus"}, 2, nil, []string{"mcp-gate help: want one of audit, check, doctor, explain, help, login, serve, version"}},
		{"serve --help", []string{"serve", "--help"}, 0, []string{"Usage: mcp-gate serve", "--listen", "--policy", "--log-level", "--upstream"}, nil},
		{"help serve", []string{"help", "serve"}, 0, []string{"Usage: mcp-gate serve", "--listen"}, nil},
		{"serve with a stray word", []string{"serve", "--policy", policy, "bogus"}, 2, nil, []string{`unknown command "bogus"`, "Usage: mcp-gate serve"}},
		{"check --help", []string{"check", "--help"}, 0, []string{"Usage: mcp-gate check [policies.yaml]"}, nil},
		{"explain -h", []string{"explain", "-h"}, 0, []string{"Usage: mcp-gate explain", "--policy file"}, nil},
		{"audit --help", []string{"audit", "--help"}, 0, []string{"Usage: mcp-gate audit verify FILE"}, nil},
		{"audit verify --help", []string{"audit", "verify", "--help"}, 0, []string{"Usage: mcp-gate audit verify FILE"}, nil},
		{"audit verify -h", []string{"audit", "verify", "-h"}, 0, []string{"Usage: mcp-gate audit verify FILE"}, nil},
		{"version --help", []string{"version", "--help"}, 0, []string{"Usage: mcp-gate version"}, nil},
		{"no upstream", []string{"--policy", policy}, 1, nil, []string{"mcp-gate: no upstream: give a command after --"}},
		{"no initialize wait", []string{"--policy", policy, "--init-wait", "0s", "--", "true"}, 1, nil, []string{"--init-wait 0s: want a positive duration"}},
		{"two upstream sources", []string{"--policy", policy, "--upstream", "a=x", "--", "y"}, 1, nil, []string{"upstreams come from a command after -- and --upstream: give only one of them"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code := exitCode(&stderr, err); code != tt.wantCode {
				t.Errorf("exit status %d, want %d (err %v)", code, tt.wantCode, err)
			}
			check := func(what, got string, want []string) {
				if len(want) == 0 && got != "" {
					t.Errorf("%s = %q, want nothing", what, got)
				}
				for _, w := range want {
					if !strings.Contains(got, w) {
						t.Errorf("%s = %q, want it to contain %q", what, got, w)
					}
				}
			}
			check("stdout", stdout.String(), tt.wantStdout)
			check("stderr", stderr.String(), tt.wantStderr)
		})
	}
}

// TestUpstreamCommand checks which arguments become the upstream command:
// only those after a "--" that the flag package read as the end of flags.
func TestUpstreamCommand(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{[]string{"--policy", "p.yaml", "--", "npx", "-y", "server", "--verbose"}, []string{"npx", "-y", "server", "--verbose"}, ""},
		{[]string{"--", "cmd"}, []string{"cmd"}, ""},
		{[]string{"--", "--policy", "x"}, []string{"--policy", "x"}, ""},
		{[]string{"--policy", "p.yaml", "--", "version"}, []string{"version"}, ""}, // after --, any name is the upstream's
		{[]string{"--policy", "p.yaml"}, nil, ""},
		{[]string{"--upstream", "a=cmd", "--"}, nil, ""},
		{[]string{"cmd", "--", "x"}, nil, `unknown command "cmd"`},
		{[]string{"--policy", "p.yaml", "cmd", "arg"}, nil, `unknown command "cmd": an upstream command goes after --, as in mcp-gate [flags] -- cmd arg`},
		{[]string{"--policy", "--", "cmd"}, []string{"cmd"}, ""}, // "--" as a value: the policy file "--" will not load
		{[]string{"--policy=--", "cmd"}, nil, `unknown command "cmd"`},
		{[]string{"--policy", "p.yaml", "audit"}, nil, `"audit" is a command of its own`},
	}
	for _, tt := range tests {
		fs, _ := stdioFlags()
		fs.SetOutput(io.Discard)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		var stderr bytes.Buffer
		got, err := upstreamCommand(fs, tt.args, usage, &stderr)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: command %q, want %q", tt.args, got, tt.want)
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v (%s)", tt.args, err, stderr.String())
		case tt.wantErr != "" && (exitCode(io.Discard, err) != 2 || !strings.Contains(stderr.String(), tt.wantErr)):
			t.Errorf("%q: err %v, stderr %q, want status 2 and %q", tt.args, err, stderr.String(), tt.wantErr)
		}
	}
}

// TestHelpListsEveryFlag keeps the help honest as flags are added.
func TestHelpListsEveryFlag(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &stdout, io.Discard); exitCode(io.Discard, err) != 0 {
		t.Fatal(err)
	}
	fs, _ := stdioFlags()
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(stdout.String(), "--"+f.Name+" ") {
			t.Errorf("--help does not list --%s:\n%s", f.Name, stdout.String())
		}
	})
	for name := range commands {
		if !strings.Contains(stdout.String(), "mcp-gate "+name) {
			t.Errorf("--help does not list the command %s", name)
		}
	}
}
