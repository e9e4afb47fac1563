package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// Filesystem is the command line of the reference filesystem server
// (@modelcontextprotocol/server-filesystem, pinned in package.json), serving
// dir; the test is skipped when npm ci has not been run.
func Filesystem(t *testing.T, dir string) []string {
	t.Helper()
	bin := filepath.Join(moduleRoot, "node_modules", ".bin", "mcp-server-filesystem")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("server-filesystem is not installed (%v): run npm ci", err)
		}
		t.Skipf("server-filesystem is not installed (%v): run npm ci", err)
	}
	return []string{bin, dir}
}

// callRaw sends a tools/call whose arguments are exactly raw, so a test can
// send what a hostile caller would: duplicate keys, invalid UTF-8.
func callRaw(t *testing.T, c *client.Client, name string, raw string) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = json.RawMessage(raw)
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("call %s %s: %v", name, raw, err)
	}
	return res
}

// TestNoWayAroundTheConditions puts the gate in front of the real
// filesystem server and a Go upstream that binds its arguments into a
// struct, and sends each spelling that used to dodge a `when` condition
// (issue 10): each is gated, denied or refused, nothing reaches the
// protected directory or runs the denied deploy, and the allowed calls
// still run. Each front end is tried: both stdio protocol versions and
// Streamable HTTP read the call through different code.
func TestNoWayAroundTheConditions(t *testing.T) {
	for _, pv := range Protocols {
		t.Run("stdio "+pv.Name, func(t *testing.T) {
			noWayAround(t, func(policyFile string) *client.Client {
				c, _ := StdioGate(t, nil, []string{"--policy", policyFile}, pv.Opts...)
				return c
			})
		})
	}
	t.Run("streamable HTTP", func(t *testing.T) {
		noWayAround(t, func(policyFile string) *client.Client {
			return ServeGate(t, nil, "--policy", policyFile).Client(t)
		})
	})
}

func noWayAround(t *testing.T, gate func(policyFile string) *client.Client) {
	root := t.TempDir()
	for _, d := range []string{"finance", "scratch", "x"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, err := filepath.EvalSymlinks(root) // the server resolves its directory; so must the globs
	if err != nil {
		t.Fatal(err)
	}
	finance := filepath.Join(root, "finance")
	fs := Filesystem(t, root)
	e := startPIM(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(e.srv.Token(alice)), 0o600); err != nil {
		t.Fatal(err)
	}
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	quoted := func(args []string) string {
		b, _ := json.Marshal(args)
		return string(b)
	}
	policyFile := WritePolicy(t, fmt.Sprintf(`version: 1
approvals:
  credential: token
  tokenFile: %q
  graphURL: %s
  graphCAFile: %q
  pollInterval: 50ms
  pollMaxBackoff: 200ms
  wait: 0
audit:
  path: %q
upstreams:
  files: {command: %s}
  db: {command: %s}
tools:
  files__write_file:          # the deny-list shape the bypasses were found on
    - when: {path: %q}
      role: %s
    - allow
  files__create_directory:    # the allow-list shape
    - {when: {path: %q}, action: allow}
    - role: %s
  db__deploy:
    - {when: {repo: "prod-*"}, action: deny}
    - allow
  db__calls: allow
  "*": deny
`, tokenFile, e.srv.URL(), e.caFile, auditFile,
		quoted(fs), quoted(append(Upstream("db"), "--demo")),
		finance+"/*", dbaRole, filepath.Join(root, "scratch")+"/*", dbaRole))
	c := gate(policyFile)

	const (
		gated   = "waiting for approval"
		denied  = "denied by"
		allowed = ""
	)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name, tool, args, want string
	}{
		// Paths into finance/ in other spellings: each needs the role.
		{"dot-dot", "files__write_file", `{"path":` + q(root+"/x/../finance/q3.xlsx") + `,"content":"1"}`, gated},
		{"double slash", "files__write_file", `{"path":` + q(root+"//finance/q3.xlsx") + `,"content":"2"}`, gated},
		{"dot segment", "files__write_file", `{"path":` + q(root+"/./finance/q3.xlsx") + `,"content":"3"}`, gated},
		{"leading double slash", "files__write_file", `{"path":` + q("/"+root+"/finance/q3.xlsx") + `,"content":"4"}`, gated},
		{"key Path", "files__write_file", `{"Path":` + q(finance+"/q3.xlsx") + `,"content":"5"}`, gated},
		{"key PATH", "files__write_file", `{"PATH":` + q(finance+"/q3.xlsx") + `,"content":"6"}`, gated},
		{"one element of an array", "files__write_file", `{"path":[` + q(root+"/x/a") + `,` + q(finance+"/q3.xlsx") + `],"content":"7"}`, gated},
		{"dot-dot out of the allow-list", "files__create_directory", `{"path":` + q(root+"/scratch/../finance/d") + `}`, gated},
		// Arguments read two ways are refused outright.
		{"duplicate key", "files__write_file", `{"path":` + q(finance+"/q3.xlsx") + `,"path":` + q(root+"/x/a") + `,"content":"8"}`, `key "path" twice`},
		{"keys equal under case folding", "db__deploy", `{"repo":"dev","REPO":"prod-db"}`, "differ only in case"},
		{"invalid UTF-8", "db__deploy", "{\"repo\":\"prod-\xff\"}", "not valid UTF-8"},
		{"lone surrogate", "db__deploy", `{"repo":"prod-\udc00"}`, "lone UTF-16 surrogate"},
		// A Go binder reads Repo, REPO; the database may ignore case and spaces.
		{"PROD-db", "db__deploy", `{"repo":"PROD-db"}`, denied},
		{"padded prod-db", "db__deploy", `{"repo":" prod-db"}`, denied},
		{"key Repo", "db__deploy", `{"Repo":"prod-db"}`, denied},
		{"key REPO", "db__deploy", `{"REPO":"prod-db"}`, denied},
		// What the rules allow still runs.
		{"deploy elsewhere", "db__deploy", `{"repo":"dev-db"}`, `deployed "dev-db"`},
		{"deploy, key in another case", "db__deploy", `{"Repo":"dev-db"}`, `deployed "dev-db"`},
		{"write outside finance", "files__write_file", `{"path":` + q(root+"/x/ok.txt") + `,"content":"fine"}`, allowed},
		{"create in scratch", "files__create_directory", `{"path":` + q(root+"/scratch/new") + `}`, allowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := callRaw(t, c, tt.tool, tt.args)
			text := Text(t, res)
			if tt.want == allowed {
				if res.IsError {
					t.Fatalf("allowed call failed: %s", text)
				}
				return
			}
			if !strings.Contains(text, tt.want) || (res.IsError != !strings.HasPrefix(tt.want, "deployed")) {
				t.Fatalf("answer %q (isError %v), want %q", text, res.IsError, tt.want)
			}
		})
	}

	// Nothing reached finance/; the allowed calls did their work.
	if entries, err := os.ReadDir(finance); err != nil || len(entries) != 0 {
		t.Errorf("finance/ holds %v (%v), want nothing", entries, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "x", "ok.txt")); err != nil || string(b) != "fine" {
		t.Errorf("allowed write: %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(root, "scratch", "new")); err != nil || !st.IsDir() {
		t.Errorf("allowed create_directory: %v", err)
	}
	// The upstream deployed exactly the two allowed calls.
	if got := Text(t, Call(t, c, "db__calls", map[string]any{"tool": "deploy"})); got != "2" {
		t.Errorf("the upstream ran deploy %s times, want 2", got)
	}
	// Each refusal of ambiguous arguments is on record as a deny.
	data, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct{ Decision, Outcome, Message string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rec.Message, "refused: the arguments") {
			refused++
			if rec.Decision != "deny" || rec.Outcome != "refused" {
				t.Errorf("audit record %s: want a refused deny", line)
			}
		}
	}
	if refused != 4 {
		t.Errorf("%d audit records of refused arguments, want 4", refused)
	}
}
