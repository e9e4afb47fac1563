package pimtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	armSub        = "/subscriptions/dfa2a084-766f-4003-8ae1-c4aeb893a99f"
	armRG         = armSub + "/resourceGroups/rg-prod"
	contributorID = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	azReaderID    = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	armReqName    = "fea7a502-9a96-4806-a26f-eee560e52045"
)

func armScenario() Scenario {
	sc := testScenario()
	sc.AzureRoles = []AzureRole{
		{ID: contributorID, DisplayName: "Contributor", RequiresApproval: true},
		{ID: azReaderID, DisplayName: "Reader", MaxDuration: time.Hour},
	}
	sc.AzureEligibilities = []AzureEligibility{
		{Principal: alice, Role: "Contributor", Scope: armSub},
		{Principal: alice, Role: azReaderID, Scope: armSub + "/resourceGroups/rg"},
		{Principal: bob, Role: "Contributor", Scope: armRG},
	}
	return sc
}

// arm is the ARM URL of collection (or more) at scope, with api-version.
func (e *emu) arm(scope, tail string) string {
	sep := "?"
	if strings.Contains(tail, "?") {
		sep = "&"
	}
	return e.ARMURL() + scope + "/providers/Microsoft.Authorization/" + tail + sep + "api-version=2020-10-01"
}

func armActivation(principal, scope, roleID, duration string) map[string]any {
	return map[string]any{"properties": map[string]any{
		"principalId":      principal,
		"roleDefinitionId": subscriptionOf(scope) + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID,
		"requestType":      "SelfActivate",
		"justification":    "tests",
		"scheduleInfo": map[string]any{
			"startDateTime": epoch.Format(time.RFC3339),
			"expiration":    map[string]any{"type": "AfterDuration", "endDateTime": nil, "duration": duration},
		},
	}}
}

// wantARMError checks an ARM error reply: {"error":{"code","message"}}
// and nothing else.
func (r reply) wantARMError(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if got := r.str(t, "error", "code"); got != code {
		t.Fatalf("error.code = %q, want %q; body %s", got, code, r.raw)
	}
	if r.str(t, "error", "message") == "" || len(r.get(t, "error").(map[string]any)) != 2 {
		t.Fatalf("want ARM's error shape {code, message}: %s", r.raw)
	}
	if !isGUID(r.header.Get("x-ms-request-id")) {
		t.Fatalf("x-ms-request-id = %q", r.header.Get("x-ms-request-id"))
	}
}

// An eligibility at the subscription admits an activation at a resource
// group under it; the request lives through approval like a directory
// role's, a PUT again under its name answers it, and the assignment is
// listed at the group and at the subscription, never by Graph.
func TestARMActivationLifecycle(t *testing.T) {
	e := startEmu(t, armScenario())
	tok := e.Token(alice, WithARMAudience())
	body := armActivation(alice, armRG, contributorID, "PT1H")
	r := e.do(t, http.MethodPut, e.arm(armRG, "roleAssignmentScheduleRequests/"+armReqName), tok, body)
	if r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.raw)
	}
	for path, want := range map[string]string{
		"name": armReqName, "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
		"id": armRG + "/providers/Microsoft.Authorization/RoleAssignmentScheduleRequests/" + armReqName,
	} {
		if got := r.str(t, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"status": StatusPendingApproval, "scope": armRG, "requestType": "SelfActivate", "principalId": alice,
		"roleDefinitionId": armSub + "/providers/Microsoft.Authorization/roleDefinitions/" + contributorID,
	} {
		if got := r.str(t, "properties", path); got != want {
			t.Errorf("properties.%s = %q, want %q", path, got, want)
		}
	}
	if got := r.str(t, "properties", "scheduleInfo", "expiration", "type"); got != "AfterDuration" {
		t.Errorf("expiration.type echoed as %q", got)
	}
	if again := e.do(t, http.MethodPut, e.arm(armRG, "roleAssignmentScheduleRequests/"+armReqName), tok, body); again.status != http.StatusOK || again.str(t, "name") != armReqName {
		t.Fatalf("PUT again: %d %s", again.status, again.raw)
	}
	if e.CreateCount() != 1 {
		t.Fatalf("CreateCount = %d after a PUT and its retry, want 1", e.CreateCount())
	}
	if err := e.Approve(armReqName); err != nil {
		t.Fatal(err)
	}
	if got := e.do(t, http.MethodGet, e.arm(armRG, "roleAssignmentScheduleRequests/"+armReqName), tok, nil); got.str(t, "properties", "status") != StatusProvisioned {
		t.Fatalf("after approval: %s", got.raw)
	}
	for _, scope := range []string{armRG, armSub} {
		insts := e.do(t, http.MethodGet, e.arm(scope, "roleAssignmentScheduleInstances?$filter=asTarget()"), tok, nil).values(t)
		if len(insts) != 1 || insts[0]["properties"].(map[string]any)["scope"] != armRG {
			t.Fatalf("assignments at %s: %v", scope, insts)
		}
	}
	other := e.do(t, http.MethodGet, e.arm(armSub+"/resourceGroups/rg-dev", "roleAssignmentScheduleInstances?$filter=asTarget()"), tok, nil).values(t)
	if len(other) != 0 {
		t.Fatalf("an assignment at rg-prod listed at rg-dev: %v", other)
	}
	graph := e.do(t, http.MethodGet, "/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')", e.Token(alice), nil).values(t)
	if len(graph) != 0 {
		t.Fatalf("Graph lists an Azure role assignment: %v", graph)
	}
}

func TestARMAudience(t *testing.T) {
	e := startEmu(t, armScenario())
	r := e.do(t, http.MethodGet, e.arm(armRG, "roleEligibilityScheduleInstances?$filter=asTarget()"), e.Token(alice), nil)
	r.wantARMError(t, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("no WWW-Authenticate on a 401")
	}
	e.do(t, http.MethodGet, e.arm(armRG, "roleEligibilityScheduleInstances?$filter=asTarget()"), "", nil).wantARMError(t, http.StatusUnauthorized, "AuthenticationFailed")
	e.do(t, http.MethodGet, "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')", e.Token(alice, WithARMAudience()), nil).
		wantError(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
}

func TestARMScopeInheritanceAndRefusals(t *testing.T) {
	e := startEmu(t, armScenario())
	alices, bobs := e.Token(alice, WithARMAudience()), e.Token(bob, WithARMAudience())
	put := func(tok, principal, scope, role, name string) reply {
		return e.do(t, http.MethodPut, e.arm(scope, "roleAssignmentScheduleRequests/"+name), tok, armActivation(principal, scope, role, "PT30M"))
	}
	// Reader is eligible at .../resourceGroups/rg: not at rg-prod, whose name it prefixes.
	put(alices, alice, armRG, azReaderID, newID()).wantARMError(t, http.StatusBadRequest, "RoleAssignmentRequestPolicyValidationFailed")
	// Bob's eligibility at the group does not reach up to the subscription.
	r := put(bobs, bob, armSub, contributorID, newID())
	r.wantARMError(t, http.StatusBadRequest, "RoleAssignmentRequestPolicyValidationFailed")
	if !strings.Contains(r.str(t, "error", "message"), "EligibilityRule") {
		t.Errorf("message %q names no EligibilityRule", r.str(t, "error", "message"))
	}
	put(alices, bob, armRG, contributorID, newID()).wantARMError(t, http.StatusForbidden, "AuthorizationFailed")
	put(alices, alice, armRG, contributorID, "not-a-guid").wantARMError(t, http.StatusBadRequest, "InvalidRoleAssignmentScheduleRequestName")
	put(alices, alice, armRG, "00000000-0000-4000-8000-000000000000", newID()).wantARMError(t, http.StatusBadRequest, "RoleDefinitionDoesNotExist")
	e.do(t, http.MethodGet, e.ARMURL()+armRG+"/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?$filter=asTarget()", alices, nil).
		wantARMError(t, http.StatusBadRequest, "MissingApiVersionParameter")
	// The same name under another principal's request is a conflict.
	name := newID()
	if r := put(bobs, bob, armRG, contributorID, name); r.status != http.StatusCreated {
		t.Fatalf("bob's PUT: %d %s", r.status, r.raw)
	}
	put(alices, alice, armRG, contributorID, name).wantARMError(t, http.StatusConflict, "RoleAssignmentScheduleRequestExists")
	e.do(t, http.MethodGet, e.arm(armRG, "roleAssignmentScheduleRequests/"+name), alices, nil).wantARMError(t, http.StatusNotFound, "RoleAssignmentScheduleRequestNotFound")
	// Cancel: once, by its requester, at its scope.
	cancel := e.arm(armRG, "roleAssignmentScheduleRequests/"+name+"/cancel")
	e.do(t, http.MethodPost, cancel, alices, nil).wantARMError(t, http.StatusNotFound, "RoleAssignmentScheduleRequestNotFound")
	if r := e.do(t, http.MethodPost, cancel, bobs, nil); r.status != http.StatusOK || len(r.raw) != 0 {
		t.Fatalf("cancel: %d %s", r.status, r.raw)
	}
	if got := e.do(t, http.MethodGet, e.arm(armRG, "roleAssignmentScheduleRequests/"+name), bobs, nil).str(t, "properties", "status"); got != StatusCanceled {
		t.Fatalf("after cancel: %s", got)
	}
	e.do(t, http.MethodPost, cancel, bobs, nil).wantARMError(t, http.StatusBadRequest, "InvalidRequestStatus")
}

func TestARMPagingThrottlingAndRoleNames(t *testing.T) {
	sc := armScenario()
	sc.PageSize = 1
	sc.AzureEligibilities = append(sc.AzureEligibilities, AzureEligibility{Principal: alice, Role: "Reader", Scope: armRG})
	e := startEmu(t, sc)
	tok := e.Token(alice, WithARMAudience())
	// At rg-prod: Contributor from the subscription and Reader at the group, one per page.
	var names []string
	next := e.arm(armRG, "roleEligibilityScheduleInstances?$filter=asTarget()")
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		r := e.do(t, http.MethodGet, next, tok, nil)
		for _, v := range r.values(t) {
			names = append(names, v["properties"].(map[string]any)["expandedProperties"].(map[string]any)["roleDefinition"].(map[string]any)["displayName"].(string))
		}
		next, _ = r.body["nextLink"].(string)
		if _, odata := r.body["@odata.nextLink"]; odata {
			t.Fatal("an ARM page carries @odata.nextLink")
		}
	}
	if strings.Join(names, ",") != "Contributor,Reader" {
		t.Fatalf("eligibilities = %v", names)
	}
	defs := e.do(t, http.MethodGet, strings.Replace(e.arm(armRG, "roleDefinitions?$filter=roleName%20eq%20'contributor'"), "2020-10-01", "2022-04-01", 1), tok, nil).values(t)
	if len(defs) != 1 || defs[0]["name"] != contributorID || defs[0]["id"] != armSub+"/providers/Microsoft.Authorization/roleDefinitions/"+contributorID {
		t.Fatalf("roleDefinitions = %v", defs)
	}
	e.SetFaults(Faults{ThrottleEvery: 1, RetryAfter: "0.5"})
	r := e.do(t, http.MethodGet, e.arm(armRG, "roleEligibilityScheduleInstances?$filter=asTarget()"), tok, nil)
	r.wantARMError(t, http.StatusTooManyRequests, "TooManyRequests")
	if r.header.Get("Retry-After") != "0.5" {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
}

// The on-behalf-of grant for ARM's scope gives an ARM token for the user,
// which ARM takes and Graph refuses.
func TestOnBehalfOfForARM(t *testing.T) {
	e := startEmu(t, armScenario())
	e.RegisterApp(App{ClientID: gateClientID, Secret: gateSecret, IdentifierURI: gateAppURI})
	f := oboForm(e.UserToken(alice, gateAppURI))
	f.Set("scope", "https://management.azure.com/.default")
	status, body := e.obo(t, f)
	if status != http.StatusOK || !strings.Contains(body["scope"].(string), "https://management.azure.com/user_impersonation") {
		t.Fatalf("exchange: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	if got := e.do(t, http.MethodGet, e.arm(armRG, "roleEligibilityScheduleInstances?$filter=asTarget()"), tok, nil).values(t); len(got) != 1 {
		t.Fatalf("alice's eligibilities with the exchanged ARM token: %v", got)
	}
	e.do(t, http.MethodGet, "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')", tok, nil).
		wantError(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
	f.Set("scope", "https://graph.microsoft.com/.default https://management.azure.com/.default")
	if status, body := e.obo(t, f); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("one token for two resources: %d %v", status, body)
	}
}
