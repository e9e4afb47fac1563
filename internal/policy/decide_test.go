package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func mustParse(t testing.TB, src string) (*Policy, []Problem) {
	t.Helper()
	p, problems, err := Parse("policies.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p, problems
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"catch-all first", head + "  \"*\": deny\n  db__query: allow\n  \"db__*\": allow\n", []string{
			`policies.yaml:4:3: warning: tools["db__query"]: unreachable: "*" (line 3) matches every tool this pattern does and comes first`,
			`policies.yaml:5:3: warning: tools["db__*"]: unreachable: "*" (line 3) matches every tool this pattern does and comes first`,
		}},
		{"broader glob first", head + "  \"db__*\": allow\n  \"db__drop_*\": deny\n  \"gh__*\": allow\n  \"db?__x\": deny\n", []string{
			`policies.yaml:4:3: warning: tools["db__drop_*"]: unreachable: "db__*" (line 3) matches every tool this pattern does and comes first`,
		}},
		{"question marks", head + "  \"db_?\": allow\n  db_x: deny\n  \"db_??\": deny\n  \"db_*\": deny\n", []string{
			`policies.yaml:4:3: warning: tools["db_x"]: unreachable: "db_?" (line 3) matches every tool this pattern does and comes first`,
		}},
		{"narrower glob first is fine", head + "  \"db__drop_*\": deny\n  \"db__*\": allow\n  \"*\": deny\n", nil},
		{"alternative after unconditional", withApprovals + "  a:\n    - allow\n    - {when: {x: y}, role: R}\n    - deny\n", []string{
			`policies.yaml:6:7: warning: tools["a"][1]: unreachable: alternative 0 (line 5) has no when and always applies first`,
			`policies.yaml:7:7: warning: tools["a"][2]: unreachable: alternative 0 (line 5) has no when and always applies first`,
		}},
		{"deny-list shapes", withApprovals + "  a:\n    - {when: {path: \"/srv/*\"}, role: R}\n    - allow\n  b:\n    - {when: {repo: \"prod-*\"}, action: deny}\n    - {when: {repo: \"x\"}, role: R}\n    - allow\n", []string{
			`policies.yaml:6:7: warning: tools["a"][1]: a deny-list: every call that dodges the conditions of alternative 0 (line 5) is allowed, and the caller picks the arguments they test; write an allow-list instead: {when: {...}, action: allow} for what is safe, then the role for the rest`,
			`policies.yaml:10:7: warning: tools["b"][2]: a deny-list: every call that dodges the conditions of alternative 0 (line 8) is allowed, and the caller picks the arguments they test; write an allow-list instead: {when: {...}, action: allow} for what is safe, then the role for the rest`,
		}},
		{"allow-lists are fine", withApprovals + "  a:\n    - {when: {path: \"/tmp/*\"}, action: allow}\n    - {role: R}\n  b:\n    - {when: {path: \"/tmp/*\"}, action: allow}\n    - {when: {path: \"/srv/*\"}, role: R}\n    - deny\n  c: [{when: {x: y}, role: R}, deny]\n", nil},
		{"empty tools", "version: 1\ntools: {}\n", []string{
			"policies.yaml:2:8: warning: tools: empty; every call will be denied",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, problems := mustParse(t, tc.src)
			var got []string
			for _, pr := range problems {
				got = append(got, pr.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("warnings:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

// decideSrc exercises first-match order, globs, conditions on nested
// arguments and alternatives. Line numbers matter to the tests below.
const decideSrc = `version: 1
approvals:
  tenantId: 00000000-1111-2222-3333-444444444444
  defaultGrant: 20m
  ticketSystem: ServiceNow
tools:
  db__drop_audit: deny
  "db__drop_*": {role: DBA, grant: 5m}
  "db__*": allow
  "gh__merge_?": {role: Merger}
  gh__merge:
    - when: {repo: "prod-*", options.force: "true"}
      role: Prod Force
      justification: required
      ticket: "CHG-{{.Arg \"change\"}}"
    - when: {repo: "prod-*"}
      role: Prod
    - when: {labels.0: "hotfix", count: "1?"}
      role: Hotfix
    - deny
  gh__conditional:
    - when: {repo: "x"}
      role: X
  "*__get_*": allow
  "gh__*": deny
`

func TestDecide(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	tests := []struct {
		name   string
		tool   string
		args   map[string]any
		action Action
		reason Reason
		rule   string
		role   string
	}{
		{"exact before a glob that also matches", "db__drop_audit", nil, Deny, ReasonRuleDeny, "policies.yaml:7", ""},
		{"glob before a broader glob", "db__drop_users", nil, Activate, ReasonRoleRequired, "policies.yaml:8", "DBA"},
		{"broader glob", "db__query", nil, Allow, ReasonRuleAllow, "policies.yaml:9", ""},
		{"glob matches an empty tail", "db__", nil, Allow, ReasonRuleAllow, "policies.yaml:9", ""},
		{"question mark is one character", "gh__merge_x", nil, Activate, ReasonRoleRequired, "policies.yaml:10", "Merger"},
		{"question mark is one rune", "gh__merge_é", nil, Activate, ReasonRoleRequired, "policies.yaml:10", "Merger"},
		{"question mark is not two", "gh__merge_xy", nil, Deny, ReasonRuleDeny, "policies.yaml:25", ""},
		{"nested condition", "gh__merge", map[string]any{"repo": "prod-api", "options": map[string]any{"force": true}}, Activate, ReasonRoleRequired, "policies.yaml:12", "Prod Force"},
		{"all conditions must hold", "gh__merge", map[string]any{"repo": "prod-api", "options": map[string]any{"force": false}}, Activate, ReasonRoleRequired, "policies.yaml:16", "Prod"},
		{"array index and number", "gh__merge", map[string]any{"repo": "dev", "labels": []any{"hotfix"}, "count": float64(12)}, Activate, ReasonRoleRequired, "policies.yaml:18", "Hotfix"},
		{"number formatted plainly", "gh__merge", map[string]any{"repo": "dev", "labels": []any{"hotfix"}, "count": float64(1.5)}, Deny, ReasonRuleDeny, "policies.yaml:20", ""},
		{"missing argument does not match", "gh__merge", map[string]any{"options": map[string]any{"force": true}}, Deny, ReasonRuleDeny, "policies.yaml:20", ""},
		{"null does not match", "gh__merge", map[string]any{"repo": nil}, Deny, ReasonRuleDeny, "policies.yaml:20", ""},
		{"nil args", "gh__merge", nil, Deny, ReasonRuleDeny, "policies.yaml:20", ""},
		{"no alternative applies", "gh__conditional", map[string]any{"repo": "y"}, Deny, ReasonNoCondition, "policies.yaml:21", ""},
		{"first matching alternative", "gh__conditional", map[string]any{"repo": "x"}, Activate, ReasonRoleRequired, "policies.yaml:22", "X"},
		{"leading star", "gh__get_issue", nil, Allow, ReasonRuleAllow, "policies.yaml:24", ""},
		{"later glob", "gh__delete_repo", nil, Deny, ReasonRuleDeny, "policies.yaml:25", ""},
		{"nothing matches", "slack__post", nil, Deny, ReasonNoMatch, "policies.yaml", ""},
		{"empty name", "", nil, Deny, ReasonNoMatch, "policies.yaml", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.tool, tc.args)
			if d.Action != tc.action || d.Reason != tc.reason || d.Rule != tc.rule || d.Role != tc.role {
				t.Fatalf("Decide(%q) = %v %v %s role %q, want %v %v %s role %q", tc.tool, d.Action, d.Reason, d.Rule, d.Role, tc.action, tc.reason, tc.rule, tc.role)
			}
			if ex := p.Explain(tc.tool, tc.args); ex.Decision != d {
				t.Fatalf("Explain decided %+v, Decide %+v", ex.Decision, d)
			}
		})
	}
}

func TestDecisionDefaults(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	d := p.Decide("db__drop_users", nil)
	if d.Grant != 5*time.Minute {
		t.Errorf("rule grant = %v, want 5m", d.Grant)
	}
	if d.Justification != DefaultJustification || d.JustificationRequired || d.Ticket != "" || d.TicketRequired || d.TicketSystem != "ServiceNow" {
		t.Errorf("defaults not applied: %+v", d)
	}
	if d := p.Decide("gh__merge_x", nil); d.Grant != 20*time.Minute {
		t.Errorf("approvals.defaultGrant not applied: %v", d.Grant)
	}
	just, ticket, err := d.Justify(Call{Tool: "db__drop_users", TraceID: "t1"})
	if err != nil || just != "db__drop_users needs DBA (mcp-gate trace t1): called by an AI agent" || ticket != "" {
		t.Errorf("Justify = %q, %q, %v", just, ticket, err)
	}
}

func TestJustify(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	args := map[string]any{"repo": "prod-api", "options": map[string]any{"force": true}, "change": float64(42)}
	d := p.Decide("gh__merge", args)
	if !d.JustificationRequired || d.Ticket != `CHG-{{.Arg "change"}}` || d.TicketRequired {
		t.Fatalf("decision = %+v", d)
	}
	if _, _, err := d.Justify(Call{Tool: "gh__merge", Args: args}); !errors.Is(err, ErrJustificationRequired) {
		t.Fatalf("without a justification argument: err = %v, want ErrJustificationRequired", err)
	}
	args[ArgJustification] = "  release 1.2  "
	just, ticket, err := d.Justify(Call{Tool: "gh__merge", TraceID: "t2", Args: args})
	if err != nil || just != `gh__merge needs Prod Force (mcp-gate trace t2), reason given: "release 1.2"` || ticket != "CHG-42" {
		t.Fatalf("Justify = %q, %q, %v", just, ticket, err)
	}
	// The caller's reason is quoted and escaped, and cut on its own.
	args[ArgJustification] = "ok\"\nrole Reader (trace 0) " + strings.Repeat("x", 600)
	just, _, _ = d.Justify(Call{Tool: "gh__merge", TraceID: "t2", Args: args})
	if !strings.HasPrefix(just, `gh__merge needs Prod Force (mcp-gate trace t2), reason given: "ok\"\nrole Reader`) || !strings.HasSuffix(just, `x…"`) || utf8.RuneCountInString(just) > 500 {
		t.Fatalf("Justify = %q", just)
	}

	p, _ = mustParse(t, withApprovals+"  pay: {role: Treasury, ticket: required}\n")
	d = p.Decide("pay", nil)
	if _, _, err := d.Justify(Call{Tool: "pay", Args: map[string]any{ArgTicket: ""}}); !errors.Is(err, ErrTicketRequired) {
		t.Fatalf("empty ticket: err = %v, want ErrTicketRequired", err)
	}
	if _, ticket, err := d.Justify(Call{Tool: "pay", Args: map[string]any{ArgTicket: "INC-7"}}); err != nil || ticket != "INC-7" {
		t.Fatalf("ticket = %q, %v", ticket, err)
	}
	// What the user gave stands in for the argument, which is not read.
	given := Call{Tool: "pay", Args: map[string]any{ArgTicket: "MODEL-1"}, Given: map[string]string{ArgTicket: " USER-2 "}}
	if _, ticket, err := d.Justify(given); err != nil || ticket != "USER-2" {
		t.Fatalf("given ticket = %q, %v", ticket, err)
	}
	given.Given[ArgTicket] = "  "
	if _, _, err := d.Justify(given); !errors.Is(err, ErrTicketRequired) {
		t.Fatalf("blank given ticket: err = %v, want ErrTicketRequired", err)
	}
}

func TestConfirmAndAsks(t *testing.T) {
	p, _ := mustParse(t, withApprovals+
		"  pay: {role: Treasury, confirm: true, ticket: required}\n"+
		"  merge:\n    - {when: {repo: \"prod-*\"}, role: R, justification: required}\n    - allow\n"+
		"  plain: {role: R, confirm: false}\n"+
		"  \"*\": deny\n")
	tests := []struct {
		tool         string
		confirm      bool
		just, ticket bool
	}{
		{"pay", true, false, true},
		{"merge", false, true, false},
		{"plain", false, false, false},
		{"other", false, false, false},
	}
	for _, tc := range tests {
		d := p.Decide(tc.tool, map[string]any{"repo": "prod-1"})
		if d.Confirm != tc.confirm {
			t.Errorf("%s: Confirm = %v, want %v", tc.tool, d.Confirm, tc.confirm)
		}
		if j, tk := p.Asks(tc.tool); j != tc.just || tk != tc.ticket {
			t.Errorf("%s: Asks = %v, %v, want %v, %v", tc.tool, j, tk, tc.just, tc.ticket)
		}
	}
	if got := ArgsSummary(map[string]any{"b": "x", "password": "hunter2"}); got != `"b"="x", "password"=***` {
		t.Errorf("ArgsSummary = %s", got)
	}
}

func TestVisibility(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	tests := []struct {
		tool   string
		hidden bool
		role   string
	}{
		{"db__drop_audit", true, ""},
		{"db__drop_x", false, "DBA"},
		{"db__query", false, ""},
		{"gh__merge", false, "Prod Force"},
		{"gh__conditional", false, "X"},
		{"gh__delete_repo", true, ""},
		{"slack__post", true, ""},
	}
	for _, tc := range tests {
		if hidden, needs := p.Visibility(tc.tool); hidden != tc.hidden || needs.Role != tc.role {
			t.Errorf("Visibility(%q) = %v, %q, want %v, %q", tc.tool, hidden, needs.Role, tc.hidden, tc.role)
		}
	}
}

func TestWhy(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	tests := map[string]string{
		"db__query":       "allowed by policies.yaml:9",
		"db__drop_audit":  "denied by policies.yaml:7",
		"db__drop_x":      `needs PIM role 'DBA' (policies.yaml:8)`,
		"gh__conditional": "denied by policies.yaml:21: the call's arguments meet none of the rule's conditions",
		"slack__post":     "denied: no rule in policies.yaml matches this tool",
	}
	for tool, want := range tests {
		if got := p.Decide(tool, nil).Why(); got != want {
			t.Errorf("Why() for %s = %q, want %q", tool, got, want)
		}
	}
	var none *Policy
	if got := none.Decide("x", nil).Why(); got != "denied: no policy loaded" {
		t.Errorf("Why() without a policy = %q", got)
	}
}

func TestNilPolicyDenies(t *testing.T) {
	var p *Policy
	if d := p.Decide("anything", nil); d.Action != Deny || d.Reason != ReasonNoPolicy {
		t.Fatalf("nil policy decided %+v", d)
	}
	if hidden, _ := p.Visibility("anything"); !hidden {
		t.Fatal("nil policy shows tools")
	}
	var zero Decision
	if zero.Action != Deny {
		t.Fatal("the zero Decision must deny")
	}
}

func TestAccessorsAndDefaults(t *testing.T) {
	p, _ := mustParse(t, head+"  a: allow\n")
	if got, want := p.Approvals(), defaultApprovals(); got != want {
		t.Errorf("Approvals() = %+v, want defaults %+v", got, want)
	}
	if got := p.Audit(); got.Path != "~/.mcp-gate/audit.jsonl" || got.Arguments != "hashed" {
		t.Errorf("Audit() = %+v", got)
	}
	want := Approvals{Backend: "entra-pim", Credential: "default", GraphURL: "https://graph.microsoft.com/v1.0", ARMURL: "https://management.azure.com",
		DefaultGrant: 15 * time.Minute, PollInterval: time.Second, PollMaxBackoff: 30 * time.Second,
		Deadline: time.Hour, GrantMargin: 30 * time.Second, Recheck: time.Minute, MaxBackground: 100,
		Justification: "{{.Tool}} needs {{.Role}} (mcp-gate trace {{.TraceID}}): called by an AI agent", TicketSystem: "mcp-gate"}
	if p.Approvals() != want {
		t.Errorf("defaults changed: %+v", p.Approvals())
	}

	src := `version: 1
approvals:
  backend: entra-pim
  tenantId: 00000000-1111-2222-3333-444444444444
  principalId: AAAAAAAA-1111-2222-3333-444444444444
  credential: token
  tokenFile: /run/token
  armTokenFile: /run/arm-token
  graphURL: http://127.0.0.1:8443/v1.0/
  armURL: http://127.0.0.1:8443/
  graphCAFile: ca.pem
  defaultGrant: 1h
  wait: 0
  pollInterval: 2s
  pollMaxBackoff: 2s
  deadline: 24h
  grantMargin: 0s
  recheck: 5s
  maxBackground: 5
  justification: required
  ticketSystem: Jira
audit: {path: /var/log/gate.jsonl, arguments: clear}
upstreams:
  db: {command: [./db, --port, 5432], env: {DSN: "${DB_DSN}"}, timeout: 90s}
  gh: {url: "https://${HOST}/mcp", headers: {Authorization: "Bearer ${TOKEN}"}}
tools:
  a: {role: Reader}
  b: {role: Writer}
  c: {role: Reader}
`
	p, _ = mustParse(t, src)
	want = Approvals{Backend: "entra-pim", TenantID: "00000000-1111-2222-3333-444444444444", PrincipalID: "AAAAAAAA-1111-2222-3333-444444444444",
		Credential: "token", TokenFile: "/run/token", ARMTokenFile: "/run/arm-token", GraphURL: "http://127.0.0.1:8443/v1.0", ARMURL: "http://127.0.0.1:8443", GraphCAFile: "ca.pem",
		DefaultGrant: time.Hour, Wait: 0, WaitSet: true, PollInterval: 2 * time.Second, PollMaxBackoff: 2 * time.Second, Deadline: 24 * time.Hour,
		GrantMargin: 0, Recheck: 5 * time.Second, MaxBackground: 5, Justification: "required", TicketSystem: "Jira"}
	if p.Approvals() != want {
		t.Errorf("Approvals() =\n %+v\nwant\n %+v", p.Approvals(), want)
	}
	if d := p.Decide("a", nil); !d.JustificationRequired || d.Grant != time.Hour {
		t.Errorf("approvals.justification: required not applied: %+v", d)
	}
	if got := p.Audit(); got != (Audit{Path: "/var/log/gate.jsonl", Arguments: "clear"}) {
		t.Errorf("Audit() = %+v", got)
	}
	ups := p.Upstreams()
	if len(ups) != 2 || ups[0].Name != "db" || !slices.Equal(ups[0].Command, []string{"./db", "--port", "5432"}) || ups[0].Env["DSN"] != "${DB_DSN}" || ups[0].Timeout != 90*time.Second ||
		ups[1].Name != "gh" || ups[1].Timeout != 0 || ups[1].URL != "https://${HOST}/mcp" || ups[1].Headers["Authorization"] != "Bearer ${TOKEN}" {
		t.Errorf("Upstreams() = %+v", ups)
	}
	ups[0].Command[0] = "changed"
	if p.Upstreams()[0].Command[0] != "./db" {
		t.Error("Upstreams() exposes the policy's own slices")
	}
	if got := p.Roles(); !slices.Equal(got, []Target{{Role: "Reader"}, {Role: "Writer"}}) {
		t.Errorf("Roles() = %+v", got)
	}
	if p.Rules() != 3 || p.File() != "policies.yaml" {
		t.Errorf("Rules() = %d, File() = %q", p.Rules(), p.File())
	}
}

func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for in, want := range map[string]string{"~/.mcp-gate/a": "/home/u/.mcp-gate/a", "~": "/home/u", "/abs": "/abs", "rel/~": "rel/~", "~other/x": "~other/x"} {
		if got, err := ExpandHome(in); err != nil || got != want {
			t.Errorf("ExpandHome(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

func TestExplainTried(t *testing.T) {
	p, _ := mustParse(t, decideSrc)
	ex := p.Explain("gh__merge", map[string]any{"repo": "dev"})
	want := []Step{
		{"policies.yaml:7", "db__drop_audit", "pattern does not match"},
		{"policies.yaml:8", "db__drop_*", "pattern does not match"},
		{"policies.yaml:9", "db__*", "pattern does not match"},
		{"policies.yaml:10", "gh__merge_?", "pattern does not match"},
		{"policies.yaml:12", "gh__merge", `when repo: "dev" does not match "prod-*"`},
		{"policies.yaml:16", "gh__merge", `when repo: "dev" does not match "prod-*"`},
		{"policies.yaml:18", "gh__merge", "when labels.0: argument missing"},
	}
	if !slices.Equal(ex.Tried, want) {
		t.Fatalf("Tried =\n %q\nwant\n %q", ex.Tried, want)
	}
	if ex.Decision.Rule != "policies.yaml:20" || ex.Decision.Action != Deny {
		t.Fatalf("decision = %+v", ex.Decision)
	}
}

func TestArgString(t *testing.T) {
	args := map[string]any{
		"s": "text", "f": 1.5, "i": 42, "i64": int64(-7), "n": json.Number("12.0"), "b": false, "nil": nil,
		"obj":  map[string]any{"k": []any{"a", 2.0}},
		"list": []any{"x", map[string]any{"y": "z"}},
	}
	tests := []struct {
		path string
		want string
		ok   bool
	}{
		{"s", "text", true},
		{"f", "1.5", true},
		{"i", "42", true},
		{"i64", "-7", true},
		{"n", "12.0", true},
		{"b", "false", true},
		{"obj", `{"k":["a",2]}`, true},
		{"obj.k.1", "2", true},
		{"list.1.y", "z", true},
		{"list.2", "", false},
		{"list.-1", "", false},
		{"list.x", "", false},
		{"s.deeper", "", false},
		{"nil", "", false},
		{"absent", "", false},
	}
	for _, tc := range tests {
		got, ok := argString(args, strings.Split(tc.path, "."))
		if got != tc.want || ok != tc.ok {
			t.Errorf("argString(%s) = %q, %v, want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLoad(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) err = %v, want fs.ErrNotExist", err)
	}
	p, problems, err := Load("../../policies.yaml")
	if err != nil || len(problems) != 0 {
		t.Fatalf("Load(policies.yaml): %v %v", problems, err)
	}
	if p.File() != "../../policies.yaml" || p.Decide("db__query", nil).Rule != "policies.yaml:46" {
		t.Fatalf("File() = %q, rule %q", p.File(), p.Decide("db__query", nil).Rule)
	}
}

func TestJustifyTemplateSeesTheCall(t *testing.T) {
	p, _ := mustParse(t, withApprovals+`  drop: {role: DBA, justification: "{{.Tool}} on {{.Upstream}} for {{.Client}} ({{.TraceID}}): {{.ArgsSummary}}"}`+"\n")
	d := p.Decide("drop", nil)
	c := Call{Tool: "drop", Upstream: "db", Client: "claude-ai 0.9", TraceID: "abc123", Args: map[string]any{
		"table":    "users",
		"cascade":  true,
		"limit":    float64(10),
		"where":    map[string]any{"id": float64(1)},
		"ids":      []any{float64(1)},
		"apiToken": "s3cr3t",
		"note":     strings.Repeat("x", 40),
	}}
	just, _, err := d.Justify(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `drop on db for claude-ai 0.9 (abc123): "apiToken"=***, "cascade"=true, "ids"=[…], "limit"=10, "note"="` + strings.Repeat("x", 37) + `…", "table"="users", "where"={…}`
	if just != want {
		t.Fatalf("justification =\n%s\nwant\n%s", just, want)
	}
}

// The caller picks argument names and values: the summary must not let
// them pass for other arguments or hide one that matters. Read back as the
// approver would, the summary names exactly the call's arguments.
func TestArgsSummaryCannotBeForged(t *testing.T) {
	tests := []struct {
		name string
		args map[string]any
		want []string // substrings the approver must see
	}{
		{"a key shows a fake dry_run", map[string]any{`dry_run=true, name`: "production"},
			[]string{`"dry_run=true, name"="production"`}},
		{"keys show a fake dry_run", map[string]any{`a"=1, "dry_run"=true, "b`: 1, "dry_run": false},
			[]string{`"dry_run"=false`, `"a\"=1, \"dry_run\"=true, \"b"=1`}},
		{"a value shows a fake dry_run", map[string]any{"dry_run": false, "name": `production", "dry_run"=true`},
			[]string{`"dry_run"=false`, `"name"="production\", \"dry_run\"=true"`}},
		{"quotes and newlines are escaped", map[string]any{"a\n\"dry_run\"": "x\ny"},
			[]string{`"a\n\"dry_run\""="x\ny"`}},
		{"bidi override and zero-width space", map[string]any{"name": "prod\u202euction\u200b"},
			[]string{`"name"="prod\u202euction\u200b"`}},
		{"an invisible character outside the BMP", map[string]any{"tag": "a\U000E0041"},
			[]string{`"tag"="a\udb40\udc41"`}},
		{"a padded key cannot push name out", map[string]any{strings.Repeat("a", 5000): "x", "name": "production"},
			[]string{`"name"="production"`, `"` + strings.Repeat("a", 37) + `…"="x"`}},
		{"a padded value is cut on its own", map[string]any{"comment": strings.Repeat("z", 5000), "name": "production"},
			[]string{`"name"="production"`}},
		{"a long number is cut", map[string]any{"n": json.Number("1" + strings.Repeat("0", 100))},
			[]string{`"n"=1` + strings.Repeat("0", summaryValueMax-2) + "…"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := templateData{Call: Call{Args: tc.args}}.ArgsSummary()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary %s\nlacks %s", got, w)
				}
			}
			if n := utf8.RuneCountInString(got); n > summaryMax {
				t.Errorf("summary is %d characters, more than %d", n, summaryMax)
			}
			var names []string
			for name := range tc.args {
				if utf8.RuneCountInString(name) < summaryNameMax-2 {
					names = append(names, name)
				}
			}
			if read := summaryNames(t, got); !slices.Equal(read, slices.Sorted(slices.Values(names))) {
				t.Errorf("summary %s\nreads as arguments %q, want %q", got, read, names)
			}
		})
	}
}

// summaryNames reads the argument names back out of a summary the way an
// approver would: each entry starts with a JSON string. Cut names (ending
// in …) are left out.
func summaryNames(t *testing.T, s string) []string {
	t.Helper()
	var names []string
	for s != "" && !strings.HasPrefix(s, "(+") {
		dec := json.NewDecoder(strings.NewReader(s))
		var name string
		if err := dec.Decode(&name); err != nil {
			t.Fatalf("summary entry %q does not start with a JSON string: %v", s, err)
		}
		rest := s[dec.InputOffset():]
		if !strings.HasPrefix(rest, "=") {
			t.Fatalf("no = after the name in %q", s)
		}
		rest = rest[1:]
		if strings.HasPrefix(rest, `"`) { // a string value: skip it whole
			dec := json.NewDecoder(strings.NewReader(rest))
			var v string
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("value in %q: %v", rest, err)
			}
			rest = rest[dec.InputOffset():]
		} else if i := strings.Index(rest, ", "); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
		if !strings.HasSuffix(name, "…") {
			names = append(names, name)
		}
		s = strings.TrimPrefix(rest, ", ")
	}
	return names
}

// Arguments that do not fit are counted, never dropped silently, and the
// summary stays within its budget however many there are.
func TestArgsSummaryCountsWhatDoesNotFit(t *testing.T) {
	args := map[string]any{"name": "production"}
	for i := range 20 {
		args[fmt.Sprintf("a%02d_%s", i, strings.Repeat("p", 30))] = strings.Repeat("v", 60)
	}
	got := templateData{Call: Call{Args: args}}.ArgsSummary()
	if n := utf8.RuneCountInString(got); n > summaryMax {
		t.Fatalf("summary is %d characters, more than %d:\n%s", n, summaryMax, got)
	}
	shown := strings.Count(got, "=")
	want := moreArguments(len(args) - shown)
	if shown == 0 || !strings.HasSuffix(got, want) {
		t.Fatalf("summary %s\nwant %d shown and ending %q", got, shown, want)
	}
	for n := range 40 {
		args := map[string]any{}
		for i := range n {
			args[strings.Repeat("k", i+1)] = strings.Repeat("\u202e", i)
		}
		got := templateData{Call: Call{Args: args}}.ArgsSummary()
		if utf8.RuneCountInString(got) > summaryMax {
			t.Fatalf("%d arguments: summary of %d characters", n, utf8.RuneCountInString(got))
		}
		if shown := strings.Count(got, `"=`); shown < n && !strings.HasSuffix(got, moreArguments(n-shown)) {
			t.Fatalf("%d arguments, %d shown, no count: %s", n, shown, got)
		}
	}
}
