package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

// runPolicyCmd runs the program in-process and returns its output and exit code.
func runPolicyCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	code = exitCode(&errOut, err)
	return out.String(), errOut.String(), code
}

func TestCheckFiveMistakes(t *testing.T) {
	const file = "../../internal/policy/testdata/five-mistakes.yaml"
	stdout, _, code := runPolicyCmd(t, "check", file)
	want := []string{
		file + `:5:3: approvals: unknown key "tenantID" (did you mean "tenantId"?); allowed: backend, tenantId, principalId, credential, clientId, tokenFile, armTokenFile, graphURL, armURL, graphCAFile, defaultGrant, wait, pollInterval, pollMaxBackoff, deadline, grantMargin, recheck, settle, maxBackground, justification, ticketSystem`,
		file + `:6:15: approvals.credential: unknown value "azure-cli" (did you mean "azurecli"?); allowed: default, azurecli, devicecode, browser, managedidentity, workloadidentity, environment, token, onbehalfof`,
		file + `:7:17: approvals.defaultGrant: 48h is longer than the maximum of 24h`,
		file + `:9:14: tools["db__query"]: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got the string "alow"`,
		file + `:10:31: tools["db__delete_database"].role: must not be empty; give a PIM role display name or role definition id`,
	}
	if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("check printed:\n%s\nwant:\n%s", stdout, strings.Join(want, "\n"))
	}
	if code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
}

func TestCheckExamplePolicies(t *testing.T) {
	tests := []struct{ file, want string }{
		{"../../policies.yaml", "ok: 13 rules\n"},
		{"../../examples/claude-desktop/policies.yaml", "ok: 15 rules\n"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runPolicyCmd(t, "check", tt.file)
		if code != 0 || stdout != tt.want || stderr != "" {
			t.Errorf("check %s: exit %d, stdout %q, stderr %q", tt.file, code, stdout, stderr)
		}
	}
}

func TestCheckDefaultFileAndWarnings(t *testing.T) {
	t.Chdir(t.TempDir())
	src := "version: 1\ntools:\n  \"*\": deny\n  db__query: allow\n"
	if err := os.WriteFile("policies.yaml", []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := runPolicyCmd(t, "check")
	want := "policies.yaml:4:3: warning: tools[\"db__query\"]: unreachable: \"*\" (line 3) matches every tool this pattern does and comes first\nok: 2 rules (1 warning)\n"
	if code != 0 || stdout != want {
		t.Fatalf("check: exit %d, stdout:\n%s\nwant:\n%s", code, stdout, want)
	}
}

func TestCheckUsageAndMissingFile(t *testing.T) {
	if _, stderr, code := runPolicyCmd(t, "check", "a.yaml", "b.yaml"); code != 2 || !strings.Contains(stderr, "Usage: mcp-gate check") {
		t.Errorf("two files: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code := runPolicyCmd(t, "check", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"allowed", []string{"db__query"}, `tool:     db__query
decision: allow (rule_allow)
rule:     policies.yaml:46  "db__query"
tried before:
  policies.yaml:43  "*__get_*": pattern does not match
  policies.yaml:44  "*__list_*": pattern does not match
  policies.yaml:45  "*__search_*": pattern does not match
`},
		{"denied", []string{"github__delete_repository"}, `tool:     github__delete_repository
decision: deny (rule_deny)
rule:     policies.yaml:74  "github__delete_repository"
`},
		{"gated", []string{"db__send_payment", `{"amount": 10, "justification": "invoice 77"}`}, `tool:     db__send_payment
decision: activate (role_required)
rule:     policies.yaml:54  "db__send_payment"
role:     Treasury
grant:    5m0s
justification: required (asked of the user, or the call's "justification" argument when its client cannot ask)
ticket:   required (asked of the user, or the call's "ticket" argument when its client cannot ask) (system mcp-gate)
`},
		{"gated by an argument", []string{"github__merge_pull_request", `{"repo": "prod-api", "pullNumber": 12}`}, `tool:     github__merge_pull_request
decision: activate (role_required)
rule:     policies.yaml:63  "github__merge_pull_request"
role:     Prod Maintainers
grant:    15m0s
justification: "merge by an AI agent (trace {{.TraceID}}): {{.ArgsSummary}}"
`},
		{"argument condition not met", []string{"github__merge_pull_request", `{"repo": "sandbox"}`}, `  policies.yaml:62  "github__merge_pull_request": when repo: "sandbox" does not match "sandbox-*"
`},
		{"another reading of an argument", []string{"files__write_file", `{"path": "/srv/shared/scratch/../finance/q3.xlsx"}`}, `  policies.yaml:69  "files__write_file": when path: "/srv/shared/scratch/../finance/q3.xlsx", read as "/srv/shared/finance/q3.xlsx", does not match "/srv/shared/scratch/*" (an allow needs every reading to)
`},
		{"allowed by an argument", []string{"github__merge_pull_request", `{"REPO": "sandbox-1"}`}, `decision: allow (rule_allow)
rule:     policies.yaml:62  "github__merge_pull_request"
`},
		{"caught by the last rule", []string{"slack__post_message"}, `decision: deny (rule_deny)
rule:     policies.yaml:77  "*"
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runPolicyCmd(t, append([]string{"explain", "--policy", "../../policies.yaml"}, tc.args...)...)
			if code != 0 || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant it to contain:\n%s", code, stderr, stdout, tc.want)
			}
		})
	}

	// What approvers would read, or what the call lacks.
	stdout, _, _ := runPolicyCmd(t, "explain", "--policy", "../../policies.yaml", "github__merge_pull_request", `{"repo": "prod-api", "pullNumber": 12}`)
	if !strings.Contains(stdout, `this call: justification "merge by an AI agent (trace ): \"pullNumber\"=12, \"repo\"=\"prod-api\"", ticket ""`) {
		t.Errorf("rendered justification missing:\n%s", stdout)
	}
	stdout, _, _ = runPolicyCmd(t, "explain", "--policy", "../../policies.yaml", "db__send_payment", `{"amount": 10, "justification": "invoice 77"}`)
	if !strings.Contains(stdout, `this call: this tool needs a ticket number`) {
		t.Errorf("missing ticket not reported:\n%s", stdout)
	}
}

func TestExplainErrors(t *testing.T) {
	if _, stderr, code := runPolicyCmd(t, "explain", "--policy", "../../policies.yaml"); code != 2 || !strings.Contains(stderr, "Usage: mcp-gate explain") {
		t.Errorf("no tool: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runPolicyCmd(t, "explain", "--policy", "../../policies.yaml", "db__query", "[1]"); code != 1 || !strings.Contains(stderr, "JSON object") {
		t.Errorf("bad arguments: exit %d, stderr %q", code, stderr)
	}
	stdout, stderr, code := runPolicyCmd(t, "explain", "--policy", "../../internal/policy/testdata/five-mistakes.yaml", "db__query")
	if code != 1 || stdout != "" || strings.Count(stderr, "five-mistakes.yaml:") != 5 {
		t.Errorf("invalid policy: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var code1 cmdline.ExitError
	err := run(context.Background(), []string{"check", "../../internal/policy/testdata/five-mistakes.yaml"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.As(err, &code1) || code1 != 1 {
		t.Errorf("check on an invalid file returned %v, want ExitError(1)", err)
	}
}

// TestCheckMistakes: slips a loose reading would accept are errors at
// file:line:col, and check exits 1.
func TestCheckMistakes(t *testing.T) {
	const approvals = "version: 1\napprovals: {tenantId: 00000000-1111-2222-3333-444444444444}\n"
	tests := []struct {
		name, src string
		want      []string // lines of stdout, after "FILE:"
	}{
		{"tab", "version: 1\ntools:\n  a: allow\n\tb: deny\n", []string{
			"4:1: tabs are not allowed in YAML; indent with spaces",
		}},
		{"indentation", approvals + "tools:\n  db__drop:\n    - when: {name: prod}\n      role: DBA\n     - allow\n", []string{
			"7:6: YAML syntax: did not find expected '-' indicator; check the indentation: the keys of one mapping, and the items of one list, must line up",
		}},
		{"keywords, roles and upstream names", approvals + "upstreams:\n  db_: {command: [./db]}\ntools:\n  a: {role: DBA, ticket: requried}\n  b: {role: deadbeef, justification: requird}\n  c: {role: 1234-5678}\n", []string{
			`4:3: upstreams: name "db_" is ambiguous in tool names, which are UPSTREAM__TOOL: a name must not contain "__" or end with _`,
			`6:26: tools["a"].ticket: unknown keyword "requried" (did you mean "required"?); write required, or a text of more than one word`,
			`7:13: tools["b"].role: "deadbeef" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
			`7:38: tools["b"].justification: unknown keyword "requird" (did you mean "required"?); write required, or a text of more than one word`,
			`8:13: tools["c"].role: "1234-5678" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "policies.yaml")
			if err := os.WriteFile(file, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, _, code := runPolicyCmd(t, "check", file)
			var want strings.Builder
			for _, w := range tt.want {
				want.WriteString(file + ":" + w + "\n")
			}
			if stdout != want.String() || code != 1 {
				t.Fatalf("check: exit %d, stdout:\n%s\nwant exit 1 and:\n%s", code, stdout, want.String())
			}
		})
	}
}
