package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// head is a valid start for cases that only test the tools: section.
const head = "version: 1\ntools:\n"

// withApprovals is a valid start for cases that need roles.
const withApprovals = "version: 1\napprovals: {tenantId: 00000000-1111-2222-3333-444444444444, credential: token}\ntools:\n"

type problemCase struct {
	name string
	src  string
	want []string // every problem, formatted
}

var errorCases = []problemCase{
	{"yaml scanner error", "version: 1\ntools:\n  a: @allow\n", []string{
		"p.yaml:3:6: YAML syntax: found character that cannot start any token",
	}},
	{"yaml syntax", "version: 1\ntools: {a: allow\n", []string{
		"p.yaml:2:8: YAML syntax: did not find expected ',' or '}'",
	}},
	{"empty file", "", []string{
		"p.yaml:1:1: the file is empty; a policy needs at least version: 1 and tools:",
	}},
	{"only a comment", "# nothing\n", []string{
		"p.yaml:1:1: the file is empty; a policy needs at least version: 1 and tools:",
	}},
	{"two documents", head + "  a: allow\n---\nversion: 1\n", []string{
		"p.yaml:4:1: a policy file holds one YAML document; remove this second one",
	}},
	{"top level not a mapping", "- allow\n", []string{
		"p.yaml:1:1: top level: want a mapping, got a list",
	}},
	{"missing version and tools", "audit: {arguments: clear}\n", []string{
		"p.yaml:1:1: version: missing; start the file with version: 1",
		"p.yaml:1:1: tools: missing; list tool patterns and their rules, e.g. tools: {\"*\": deny}",
	}},
	{"unsupported version", "version: 2\ntools: {a: allow}\n", []string{
		"p.yaml:1:10: version: want 1 (the only version this mcp-gate reads), got the number 2",
	}},
	{"unknown top-level key", "version: 1\ntool: {a: allow}\ntools: {a: allow}\n", []string{
		`p.yaml:2:1: top level: unknown key "tool" (did you mean "tools"?); allowed: version, approvals, audit, serve, ui, upstreams, tools`,
	}},
	{"duplicate top-level key", "version: 1\nversion: 1\ntools: {a: allow}\n", []string{
		`p.yaml:2:1: top level: "version" appears twice (first at line 1)`,
	}},
	{"unknown approvals key", "version: 1\napprovals:\n  tenantID: x\ntools: {a: allow}\n", []string{
		`p.yaml:3:3: approvals: unknown key "tenantID" (did you mean "tenantId"?); allowed: backend, tenantId, principalId, credential, clientId, tokenFile, armTokenFile, graphURL, armURL, graphCAFile, defaultGrant, wait, pollInterval, pollMaxBackoff, deadline, grantMargin, recheck, settle, maxBackground, justification, ticketSystem`,
	}},
	{"approvals not a mapping", "version: 1\napprovals: [entra-pim]\ntools: {a: allow}\n", []string{
		"p.yaml:2:12: approvals: want a mapping, got a list",
	}},
	{"bad GUIDs", "version: 1\napprovals:\n  tenantId: contoso.onmicrosoft.com\n  principalId: 1234\ntools: {a: allow}\n", []string{
		`p.yaml:3:13: approvals.tenantId: "contoso.onmicrosoft.com" is not a GUID; want 8-4-4-4-12 hex digits, e.g. 00000000-1111-2222-3333-444444444444`,
		"p.yaml:4:16: approvals.principalId: want a string, got the number 1234",
	}},
	{"unknown backend and credential", "version: 1\napprovals: {backend: cyberark, credential: AzureCLI}\ntools: {a: allow}\n", []string{
		`p.yaml:2:22: approvals.backend: unknown value "cyberark"; allowed: entra-pim`,
		`p.yaml:2:44: approvals.credential: unknown value "AzureCLI" (did you mean "azurecli"?); allowed: default, azurecli, devicecode, browser, managedidentity, workloadidentity, environment, token, onbehalfof`,
	}},
	{"bad durations", "version: 1\napprovals:\n  defaultGrant: 15\n  wait: -1s\n  pollInterval: 0s\n  deadline: 25h\n  grantMargin: soon\ntools: {a: allow}\n", []string{
		`p.yaml:3:17: approvals.defaultGrant: "15" is not a duration; write a Go duration such as 30s, 15m or 1h30m`,
		"p.yaml:4:9: approvals.wait: -1s is negative; use 0 or more",
		"p.yaml:5:17: approvals.pollInterval: 0s must be more than 0",
		"p.yaml:6:13: approvals.deadline: 25h is longer than the maximum of 24h",
		`p.yaml:7:16: approvals.grantMargin: "soon" is not a duration; write a Go duration such as 30s, 15m or 1h30m`,
	}},
	{"recheck below the minimum", "version: 1\napprovals:\n  recheck: 4s\ntools: {a: allow}\n", []string{
		"p.yaml:3:12: approvals.recheck: 4s is below the minimum of 5s",
	}},
	{"recheck not a duration", "version: 1\napprovals: {recheck: 0s}\ntools: {a: allow}\n", []string{
		"p.yaml:2:22: approvals.recheck: 0s must be more than 0",
	}},
	{"backoff below interval", "version: 1\napprovals: {pollInterval: 5s, pollMaxBackoff: 2s}\ntools: {a: allow}\n", []string{
		"p.yaml:2:47: approvals.pollMaxBackoff: 2s is below pollInterval 5s",
	}},
	{"graphURL http off loopback", "version: 1\napprovals: {graphURL: \"http://graph.example.com/v1.0\"}\ntools: {a: allow}\n", []string{
		"p.yaml:2:23: approvals.graphURL: http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://",
	}},
	{"graphURL not a URL", "version: 1\napprovals: {graphURL: graph}\ntools: {a: allow}\n", []string{
		`p.yaml:2:23: approvals.graphURL: "graph" is not an absolute http(s) URL, e.g. https://graph.microsoft.com/v1.0`,
	}},
	{"armURL http off loopback", "version: 1\napprovals: {armURL: \"http://arm.example.com\"}\ntools: {a: allow}\n", []string{
		"p.yaml:2:21: approvals.armURL: http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://",
	}},
	{"armTokenFile without token credential", "version: 1\napprovals: {credential: azurecli, armTokenFile: /t}\ntools: {a: allow}\n", []string{
		`p.yaml:2:49: approvals.armTokenFile: only used with credential: token (credential is "azurecli")`,
	}},
	{"tokenFile without token credential", "version: 1\napprovals: {credential: azurecli, tokenFile: /t}\ntools: {a: allow}\n", []string{
		`p.yaml:2:46: approvals.tokenFile: only used with credential: token (credential is "azurecli")`,
	}},
	{"maxBackground and ticketSystem", "version: 1\napprovals: {maxBackground: 0, ticketSystem: \"\"}\ntools: {a: allow}\n", []string{
		"p.yaml:2:28: approvals.maxBackground: the number 0 is not a whole number above 0",
		"p.yaml:2:45: approvals.ticketSystem: must not be empty",
	}},
	{"audit", "version: 1\naudit: {path: \"\", arguments: plain, rotate: true}\ntools: {a: allow}\n", []string{
		"p.yaml:2:15: audit.path: must not be empty",
		`p.yaml:2:30: audit.arguments: unknown value "plain"; allowed: hashed, clear`,
		`p.yaml:2:37: audit: unknown key "rotate"; allowed: path, arguments`,
	}},
	{"upstreams", "version: 1\nupstreams:\n  a__b: {command: [x]}\n  both: {command: [x], url: \"https://h/mcp\"}\n  none: {env: {A: b}}\n  cmd: {command: ./server}\n  web: {url: ftp://h, headers: {\"bad header\": x}}\n  envs: {command: [x], env: {1X: y}, headers: {A: b}}\n  slow: {command: [x], timeout: 0s}\n  never: {url: \"https://h/mcp\", timeout: forever}\ntools: {a: allow}\n", []string{
		`p.yaml:3:3: upstreams: name "a__b" is ambiguous in tool names, which are UPSTREAM__TOOL: a name must not contain "__" or end with _`,
		"p.yaml:4:3: upstreams.both: give either command or url, not both",
		"p.yaml:5:3: upstreams.none: missing command (a process to start) or url (a Streamable HTTP endpoint)",
		`p.yaml:6:18: upstreams.cmd.command: want a non-empty list: the program and its arguments, e.g. [./server, --flag], got the string "./server"`,
		`p.yaml:7:14: upstreams.web.url: "ftp://h" is not an absolute http(s) URL`,
		`p.yaml:7:33: upstreams.web.headers: "bad header" is not an HTTP header name`,
		"p.yaml:8:3: upstreams.envs: headers are only used with url",
		`p.yaml:8:30: upstreams.envs.env: "1X" is not an environment variable name`,
		"p.yaml:9:33: upstreams.slow.timeout: 0s must be more than 0",
		`p.yaml:10:42: upstreams.never.timeout: "forever" is not a duration; write a Go duration such as 30s, 15m or 1h30m`,
	}},
	{"duplicate pattern", head + "  db__query: allow\n  \"*\": deny\n  db__query: deny\n", []string{
		`p.yaml:5:3: tools: "db__query" appears twice (first at line 3)`,
	}},
	{"bad patterns", head + "  \"\": allow\n  \"db query\": allow\n", []string{
		"p.yaml:3:3: tools: empty pattern; write a tool name or a glob such as db__*",
		`p.yaml:4:3: tools["db query"]: the pattern contains white space, which tool names never do`,
	}},
	{"unknown rule keyword", head + "  a: alow\n  b: true\n", []string{
		`p.yaml:3:6: tools["a"]: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got the string "alow"`,
		`p.yaml:4:6: tools["b"]: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got the boolean true`,
	}},
	{"rule mapping without role", withApprovals + "  a: {grant: 5m}\n", []string{
		`p.yaml:4:6: tools["a"]: missing role; a rule mapping names what PIM activates for a call (role, group or azureRole), or is {when: {...}, action: allow|deny} (write allow or deny for a rule without conditions)`,
	}},
	{"unknown rule key", withApprovals + "  a: {role: R, approver: bob}\n", []string{
		`p.yaml:4:16: tools["a"]: unknown key "approver"; allowed: role, group, azureRole, access, scope, grant, when, justification, ticket, confirm, action`,
	}},
	{"action mistakes", withApprovals + "  a: {when: {x: y}, action: alow}\n  b: {action: allow, role: R}\n  c: {when: {x: y}, action: deny, grant: 5m, ticket: required}\n", []string{
		`p.yaml:4:29: tools["a"].action: unknown value "alow" (did you mean "allow"?); allowed: allow, deny`,
		`p.yaml:5:15: tools["b"]: action and role exclude each other: a mapping with role activates it; action: allow or deny takes none`,
		`p.yaml:6:29: tools["c"]: grant, ticket only go with role, group or azureRole; action: deny takes just when`,
	}},
	{"confirm mistakes", withApprovals + "  a: {role: R, confirm: yes}\n  b: {role: R, confirm: \"true\"}\n  c: {when: {x: y}, action: allow, confirm: true}\n", []string{
		`p.yaml:4:25: tools["a"].confirm: want true or false, got the string "yes"`,
		`p.yaml:5:25: tools["b"].confirm: want true or false, got the string "true"`,
		`p.yaml:6:29: tools["c"]: confirm only go with role, group or azureRole; action: allow takes just when`,
	}},
	{"empty roles", withApprovals + "  a: {role: \"\"}\n  b: {role: \"  \"}\n  c: {role: }\n", []string{
		`p.yaml:4:13: tools["a"].role: must not be empty; give a PIM role display name or role definition id`,
		`p.yaml:5:13: tools["b"].role: must not be empty; give a PIM role display name or role definition id`,
		`p.yaml:6:13: tools["c"].role: must not be empty; give a PIM role display name or role definition id`,
	}},
	{"malformed role id", withApprovals + "  a: {role: 9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c}\n", []string{
		`p.yaml:4:13: tools["a"].role: "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
	}},
	{"bad grants", withApprovals + "  a: {role: R, grant: 0s}\n  b: {role: R, grant: 36h}\n  c: {role: R, grant: 5 minutes}\n", []string{
		`p.yaml:4:23: tools["a"].grant: 0s must be more than 0`,
		`p.yaml:5:23: tools["b"].grant: 36h is longer than the maximum of 24h`,
		`p.yaml:6:23: tools["c"].grant: "5 minutes" is not a duration; write a Go duration such as 30s, 15m or 1h30m`,
	}},
	{"when not a mapping", withApprovals + "  a: {role: R, when: \"repo=prod\"}\n  b: {role: R, when: {}}\n", []string{
		`p.yaml:4:22: tools["a"].when: want a mapping of argument path to glob, e.g. {repo: "prod-*"}, got the string "repo=prod"`,
		`p.yaml:5:22: tools["b"].when: empty; give at least one argument condition, or remove when`,
	}},
	{"when entries", withApprovals + "  a: {role: R, when: {a..b: x, c: [x], d: , c: y}}\n", []string{
		`p.yaml:4:23: tools["a"].when: "a..b" is not an argument path; use names joined by dots, e.g. repo or options.branch`,
		`p.yaml:4:35: tools["a"].when.c: want a glob such as "prod-*", got a list`,
		`p.yaml:4:43: tools["a"].when.d: want a glob such as "prod-*", got nothing`,
		`p.yaml:4:45: tools["a"].when: "c" appears twice (first at line 4)`,
	}},
	{"alternatives", withApprovals + "  a: []\n  b:\n    - [allow]\n    - maybe\n", []string{
		`p.yaml:4:6: tools["a"]: empty list; give at least one alternative`,
		`p.yaml:6:7: tools["b"][0]: an alternative is allow, deny or a mapping; lists do not nest`,
		`p.yaml:7:7: tools["b"][1]: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got the string "maybe"`,
	}},
	{"templates", withApprovals + "  a: {role: R, justification: \"{{.Tool\"}\n  b: {role: R, ticket: \"{{.Ticket}}\"}\n  c: {role: R, justification: \"\"}\n", []string{
		`p.yaml:4:31: tools["a"].justification: template error: 1: unclosed action`,
		`p.yaml:5:24: tools["b"].ticket: template error: 1:2: executing "tools[\"b\"].ticket" at <.Ticket>: can't evaluate field Ticket in type policy.templateData`,
		`p.yaml:6:31: tools["c"].justification: must not be empty; write required or a text such as "{{.Tool}} via mcp-gate"`,
	}},
	{"approvals justification template", "version: 1\napprovals: {justification: \"{{if}}\"}\ntools: {a: allow}\n", []string{
		`p.yaml:2:28: approvals.justification: template error: 1: missing value for if`,
	}},
	{"roles without approvals", head + "  a: {role: DBA}\n  b: {role: Other}\n", []string{
		"p.yaml:3:6: rules name PIM roles, groups or Azure roles, so the file needs an approvals: section (backend, tenantId, credential, ...)",
	}},
	{"alias", "version: 1\ntools:\n  a: &r allow\n  b: *r\n", []string{
		`p.yaml:4:6: tools["b"]: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got an alias (*r); aliases are not supported, write the value out`,
	}},
}

func TestParseProblems(t *testing.T) { runProblemCases(t, errorCases) }

// runProblemCases parses each case's file and checks that it is invalid
// with exactly the problems wanted.
func runProblemCases(t *testing.T, cases []problemCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, problems, err := Parse("p.yaml", []byte(tc.src))
			got := make([]string, len(problems))
			for i, pr := range problems {
				got[i] = pr.String()
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n got  %q\n want %q", got, tc.want)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if p != nil {
				t.Fatalf("an invalid file yielded a policy")
			}
			for _, pr := range verr.Problems {
				if pr.Severity != SeverityError {
					t.Errorf("ValidationError lists a warning: %v", pr)
				}
				if !strings.Contains(err.Error(), pr.String()) {
					t.Errorf("error text misses %q", pr)
				}
			}
		})
	}
}
