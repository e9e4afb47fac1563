package policy

import (
	"strings"
	"testing"
)

const (
	sub   = "/subscriptions/11111111-2222-3333-4444-555555555555"
	subRG = sub + "/resourceGroups/rg-prod"
)

var targetErrorCases = []problemCase{
	{"two kinds", withApprovals + "  a: {role: R, group: G}\n  b: {group: G, azureRole: Reader, scope: " + sub + "}\n", []string{
		`p.yaml:4:16: tools["a"]: role and group exclude each other: a rule activates exactly one of role (a directory role), group (PIM for Groups) or azureRole (an Azure role at a scope)`,
		`p.yaml:5:17: tools["b"]: group and azureRole exclude each other: a rule activates exactly one of role (a directory role), group (PIM for Groups) or azureRole (an Azure role at a scope)`,
	}},
	{"action with a group", withApprovals + "  a: {group: G, action: allow}\n", []string{
		`p.yaml:4:25: tools["a"]: action and group exclude each other: a mapping with group activates it; action: allow or deny takes none`,
	}},
	{"bad ids", withApprovals + "  a: {group: 1234-abcd}\n  b: {azureRole: deadbeef-0000, scope: " + sub + "}\n  c: {group: \"\"}\n", []string{
		`p.yaml:4:14: tools["a"].group: "1234-abcd" looks like a group object id but is not a GUID; want 8-4-4-4-12 hex digits`,
		`p.yaml:5:18: tools["b"].azureRole: "deadbeef-0000" looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits`,
		`p.yaml:6:14: tools["c"].group: must not be empty; give a group display name or object id`,
	}},
	{"access", withApprovals + "  a: {group: G, access: admin}\n  b: {role: R, access: owner}\n  c: {azureRole: Reader, scope: " + sub + ", access: member}\n", []string{
		`p.yaml:4:25: tools["a"].access: unknown value "admin"; allowed: member, owner`,
		`p.yaml:5:16: tools["b"]: access goes only with group (member or owner of a PIM for Groups group)`,
		`p.yaml:6:86: tools["c"]: access goes only with group (member or owner of a PIM for Groups group)`,
	}},
	{"scope placement", withApprovals + "  a: {azureRole: Reader}\n  b: {role: R, scope: " + sub + "}\n  c: {when: {x: y}, action: deny, scope: " + sub + "}\n", []string{
		`p.yaml:4:7: tools["a"]: azureRole needs a scope: the subscription, resource group or resource to activate it on, e.g. scope: /subscriptions/{id}/resourceGroups/{name}`,
		`p.yaml:5:16: tools["b"]: scope goes only with azureRole (the Azure resource the role is activated on)`,
		`p.yaml:6:35: tools["c"]: scope goes only with azureRole (the Azure resource the role is activated on)`,
	}},
	{"bad scope", withApprovals + "  a: {azureRole: Reader, scope: /subscriptions/prod}\n", []string{
		`p.yaml:4:33: tools["a"].scope: "/subscriptions/prod" is not an Azure resource scope: subscription id "prod" is not a GUID; write /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name} or a resource id under it`,
	}},
	{"groups without approvals", head + "  a: {group: Prod admins}\n", []string{
		"p.yaml:3:6: rules name PIM roles, groups or Azure roles, so the file needs an approvals: section (backend, tenantId, credential, ...)",
	}},
}

func TestTargetProblems(t *testing.T) { runProblemCases(t, targetErrorCases) }

func TestScopeProblem(t *testing.T) {
	tests := []struct {
		scope string
		why   string // a part of the complaint; "" for a valid scope
	}{
		{sub, ""},
		{subRG, ""},
		{"/SUBSCRIPTIONS/11111111-2222-3333-4444-555555555555/resourcegroups/RG_(1).x", ""},
		{subRG + "/providers/Microsoft.Compute/virtualMachines/vm1", ""},
		{sub + "/providers/Microsoft.Storage/storageAccounts/st1/blobServices/default", ""},
		{"subscriptions/11111111-2222-3333-4444-555555555555", "must start with /"},
		{"/", "empty segment"},
		{sub + "/", "empty segment"},
		{sub + "//resourceGroups/x", "empty segment"},
		{"/tenants/x", "must begin with /subscriptions/"},
		{"/subscriptions", "must begin with /subscriptions/"},
		{"/subscriptions/1234", `"1234" is not a GUID`},
		{sub + "/resourceGroups", "needs a name"},
		{sub + "/resourceGroups/rg.", "must not end in a period"},
		{sub + "/resourceGroups/rg!", "only letters"},
		{sub + "/resourceGroups/" + strings.Repeat("r", 91), "at most 90"},
		{sub + "/resourceGroups/..", ". or .. segment"},
		{sub + "/resourceGroups/rg/..", ". or .. segment"},
		{sub + "/resourceGroups/rg x", "white space"},
		{sub + "/resourceGroups/rg%2F", "one of ?#%"},
		{sub + "/resourceGroups/rg?x=1", "one of ?#%"},
		{subRG + "/things/x", "/providers/{namespace}/{type}/{name}"},
		{subRG + "/providers/Microsoft.Compute", "/providers/{namespace}/{type}/{name}"},
		{subRG + "/providers/Microsoft.Compute/virtualMachines/vm1/extensions", "pairs of"},
	}
	for _, tc := range tests {
		got := scopeProblem(tc.scope)
		if tc.why == "" && got != "" || tc.why != "" && !strings.Contains(got, tc.why) {
			t.Errorf("scopeProblem(%q) = %q, want %q", tc.scope, got, tc.why)
		}
	}
}

const targetSrc = withApprovals + `  role_tool: {role: DBA}
  member_tool: {group: Prod admins}
  owner_tool: {group: 9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3, access: owner}
  azure_tool: {azureRole: Contributor, scope: ` + subRG + `}
  mixed:
    - when: {env: dev}
      action: allow
    - azureRole: Reader
      scope: ` + sub + `
`

func TestTargets(t *testing.T) {
	p, _ := mustParse(t, targetSrc)
	tests := []struct {
		tool string
		want Target
		why  string
		note string // Target.String, as tools/list and errors show it
	}{
		{"role_tool", Target{Kind: KindRole, Role: "DBA"}, "needs PIM role 'DBA' (policies.yaml:4)", "PIM role 'DBA'"},
		{"member_tool", Target{Kind: KindGroup, Role: "Prod admins", Access: AccessMember}, "needs PIM group 'Prod admins' (member) (policies.yaml:5)", "PIM group 'Prod admins' (member)"},
		{"owner_tool", Target{Kind: KindGroup, Role: "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", Access: AccessOwner}, "needs PIM group '9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3' (owner) (policies.yaml:6)", "PIM group '9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3' (owner)"},
		{"azure_tool", Target{Kind: KindAzureRole, Role: "Contributor", Scope: subRG}, "needs Azure role 'Contributor' at " + subRG + " (policies.yaml:7)", "Azure role 'Contributor' at " + subRG},
	}
	for _, tc := range tests {
		d := p.Decide(tc.tool, nil)
		if d.Action != Activate || d.Target != tc.want {
			t.Errorf("Decide(%q) = %v %+v, want activate %+v", tc.tool, d.Action, d.Target, tc.want)
		}
		if got := d.Why(); got != tc.why {
			t.Errorf("Why(%q) = %q, want %q", tc.tool, got, tc.why)
		}
		if hidden, needs := p.Visibility(tc.tool); hidden || needs.String() != tc.note {
			t.Errorf("Visibility(%q) = %v, %q, want visible, %q", tc.tool, hidden, needs, tc.note)
		}
	}
	if _, needs := p.Visibility("mixed"); needs != (Target{Kind: KindAzureRole, Role: "Reader", Scope: sub}) {
		t.Errorf("Visibility(mixed) = %+v, want the Azure role of the second alternative", needs)
	}
	want := []Target{tests[0].want, tests[1].want, tests[2].want, tests[3].want, {Kind: KindAzureRole, Role: "Reader", Scope: sub}}
	if got := p.Roles(); len(got) != len(want) {
		t.Fatalf("Roles() = %+v, want %+v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("Roles()[%d] = %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	// The same role at two scopes, or a group as member and owner, are two
	// targets: a grant of one must never stand for the other.
	p2, _ := mustParse(t, withApprovals+"  a: {azureRole: Reader, scope: "+sub+"}\n  b: {azureRole: Reader, scope: "+subRG+"}\n  c: {group: G}\n  d: {group: G, access: owner}\n")
	if got := p2.Roles(); len(got) != 4 {
		t.Errorf("Roles() = %+v, want 4 distinct targets", got)
	}
}

func TestExplainTargets(t *testing.T) {
	p, _ := mustParse(t, targetSrc)
	tests := []struct {
		tool string
		want []string
	}{
		{"role_tool", []string{"role:     DBA\n"}},
		{"owner_tool", []string{"group:    9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3 (PIM for Groups, owner)\n"}},
		{"azure_tool", []string{"azureRole: Contributor (Azure resource role)\n", "scope:    " + subRG + "\n"}},
		{"mixed", []string{"policies.yaml:9  \"mixed\": when env: argument missing\n", "azureRole: Reader (Azure resource role)\nscope:    " + sub + "\n"}},
	}
	for _, tc := range tests {
		got := p.Explain(tc.tool, nil).String()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("Explain(%q) =\n%s\nwant it to contain %q", tc.tool, got, w)
			}
		}
	}
}

func TestDecideTargetAllocs(t *testing.T) {
	p, _ := mustParse(t, targetSrc)
	if n := testing.AllocsPerRun(100, func() { _ = p.Decide("azure_tool", nil) }); n != 0 {
		t.Errorf("Decide allocates %v times for an Azure role rule, want 0", n)
	}
}
