package pimtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The token's scp decides what it may call, as in Graph: reads accept the
// read permissions (or broader ones), the create POST only the ReadWrite
// ones. The Azure CLI's Graph token reads role definitions and nothing of
// PIM.
func TestScopesPerEndpoint(t *testing.T) {
	e := startEmu(t, testScenario())
	azureCLI := []string{"Application.ReadWrite.All", "Directory.AccessAsUser.All", "Group.ReadWrite.All", "User.ReadWrite.All"}
	readOnly := []string{"RoleManagement.Read.Directory"}
	tests := []struct {
		name   string
		scopes []string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"cli reads roles", azureCLI, "GET", "/roleManagement/directory/roleDefinitions", nil, 200, ""},
		{"cli cannot read eligibility", azureCLI, "GET", "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')", nil, 403, "PermissionScopeNotGranted"},
		{"cli cannot activate", azureCLI, "POST", requestsPath, activation(alice, readerID, "PT30M"), 403, "PermissionScopeNotGranted"},
		{"no scopes cannot read roles", nil, "GET", "/roleManagement/directory/roleDefinitions", nil, 403, "Authorization_RequestDenied"},
		{"read-only reads eligibility", readOnly, "GET", "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')", nil, 200, ""},
		{"read-only reads assignments", readOnly, "GET", "/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')", nil, 200, ""},
		{"read-only reads policies", readOnly, "GET", policiesQuery(readerID), nil, 200, ""},
		{"read-only cannot activate", readOnly, "POST", requestsPath, activation(alice, readerID, "PT30M"), 403, "PermissionScopeNotGranted"},
		{"read-only cannot cancel", readOnly, "POST", requestsPath + "/" + readerID + "/cancel", nil, 403, "PermissionScopeNotGranted"},
		{"broader write activates", []string{"RoleManagement.ReadWrite.Directory"}, "POST", requestsPath, activation(alice, readerID, "PT30M"), 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, e.Token(alice, WithScopes(tt.scopes...)), tt.body)
			if tt.code != "" {
				r.wantError(t, tt.status, tt.code)
				if tt.code == "PermissionScopeNotGranted" && !strings.Contains(r.str(t, "error", "message"), "missing permission scope") {
					t.Errorf("message %q does not name the missing scope", r.str(t, "error", "message"))
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
		})
	}
	if n := e.CreateCount(); n != 1 {
		t.Errorf("%d requests created; only the broader write permission may create one", n)
	}
}

// A role that requires an authentication context refuses a token without
// it with the claims challenge in the message, and admits one with it.
func TestAuthContext(t *testing.T) {
	sc := testScenario()
	sc.Roles = append(sc.Roles, Role{ID: "aaaaaaaa-0000-4000-8000-000000000009", DisplayName: "Context", AuthContext: "c1"})
	sc.Eligibilities = append(sc.Eligibilities, Eligibility{Principal: alice, Role: "Context"})
	e := startEmu(t, sc)
	body := activation(alice, "aaaaaaaa-0000-4000-8000-000000000009", "PT30M")
	for _, tok := range []string{e.Token(alice, WithMFA()), e.Token(alice, WithACRS("c2"))} {
		r := e.do(t, "POST", requestsPath, tok, body)
		r.wantError(t, http.StatusBadRequest, "RoleAssignmentRequestAcrsValidationFailed")
		if msg := r.str(t, "error", "message"); !strings.Contains(msg, `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`) {
			t.Fatalf("message %q lacks the claims challenge", msg)
		}
	}
	if n := e.CreateCount(); n != 0 {
		t.Fatalf("%d requests created without the context", n)
	}
	if r := e.do(t, "POST", requestsPath, e.Token(alice, WithACRS("c1")), body); r.status != http.StatusCreated {
		t.Fatalf("with acrs c1: %d %s", r.status, r.raw)
	}
}

func policiesQuery(roleID string) string {
	q := url.Values{}
	q.Set("$filter", "scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '"+roleID+"'")
	q.Set("$expand", "policy($expand=rules)")
	return "/policies/roleManagementPolicyAssignments?" + q.Encode()
}

// The role management policies say what each role's activation needs, in
// the rules Graph documents (EndUser Assignment level).
func TestRoleManagementPolicies(t *testing.T) {
	sc := testScenario()
	sc.Roles = append(sc.Roles, Role{ID: "aaaaaaaa-0000-4000-8000-000000000009", DisplayName: "Context", AuthContext: "c1"})
	e := startEmu(t, sc)
	tok := e.Token(alice)
	rules := func(t *testing.T, roleID string) map[string]map[string]any {
		r := e.do(t, "GET", policiesQuery(roleID), tok, nil)
		vs := r.values(t)
		if len(vs) != 1 || vs[0]["roleDefinitionId"] != roleID || vs[0]["scopeId"] != "/" || vs[0]["scopeType"] != "DirectoryRole" {
			t.Fatalf("assignments: %s", r.raw)
		}
		pol, _ := vs[0]["policy"].(map[string]any)
		list, _ := pol["rules"].([]any)
		if pol["id"] != vs[0]["policyId"] || len(list) == 0 {
			t.Fatalf("policy not expanded with rules: %s", r.raw)
		}
		out := map[string]map[string]any{}
		for _, x := range list {
			m := x.(map[string]any)
			out[m["id"].(string)] = m
		}
		return out
	}
	treasury := rules(t, treasuryID)
	if got := treasury["Enablement_EndUser_Assignment"]["enabledRules"]; !sameStrings(got, "MultiFactorAuthentication", "Justification", "Ticketing") {
		t.Errorf("Treasury enabledRules = %v", got)
	}
	if got := treasury["Enablement_EndUser_Assignment"]["@odata.type"]; got != "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule" {
		t.Errorf("enablement rule type %v", got)
	}
	if got := treasury["Expiration_EndUser_Assignment"]["maximumDuration"]; got != "PT8H" {
		t.Errorf("Treasury maximumDuration = %v, want the default PT8H", got)
	}
	if got := treasury["AuthenticationContext_EndUser_Assignment"]; got["isEnabled"] != false || got["claimValue"] != nil {
		t.Errorf("Treasury authentication context rule = %v, want off with a null claim", got)
	}
	dba := rules(t, dbaID)
	if s, _ := dba["Approval_EndUser_Assignment"]["setting"].(map[string]any); s["isApprovalRequired"] != true {
		t.Errorf("DBA approval setting = %v", s)
	}
	reader := rules(t, readerID)
	if got := reader["Expiration_EndUser_Assignment"]["maximumDuration"]; got != "PT1H" {
		t.Errorf("Reader maximumDuration = %v", got)
	}
	ctx := rules(t, "aaaaaaaa-0000-4000-8000-000000000009")
	if got := ctx["AuthenticationContext_EndUser_Assignment"]; got["isEnabled"] != true || got["claimValue"] != "c1" {
		t.Errorf("Context rule = %v", got)
	}
	t.Run("filter must scope the request", func(t *testing.T) {
		r := e.do(t, "GET", "/policies/roleManagementPolicyAssignments?$filter="+url.QueryEscape("roleDefinitionId eq '"+readerID+"'"), tok, nil)
		r.wantError(t, http.StatusBadRequest, "BadRequest")
	})
	t.Run("without expand, no policy", func(t *testing.T) {
		r := e.do(t, "GET", "/policies/roleManagementPolicyAssignments?$filter="+url.QueryEscape("scopeId eq '/' and scopeType eq 'Directory'"), tok, nil)
		vs := r.values(t)
		if len(vs) != len(sc.Roles) || vs[0]["policy"] != nil {
			t.Fatalf("%d assignments (want %d), first %v", len(vs), len(sc.Roles), vs[0])
		}
	})
}

func sameStrings(v any, want ...string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i, w := range want {
		if list[i] != w {
			return false
		}
	}
	return true
}
