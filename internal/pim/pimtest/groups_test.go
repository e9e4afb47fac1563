package pimtest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	prodID    = "bbbbbbbb-0000-4000-8000-000000000001" // manual approval, justification
	oncallID  = "bbbbbbbb-0000-4000-8000-000000000002" // no approval, max 1h
	groupPIM  = "/identityGovernance/privilegedAccess/group"
	groupReqs = groupPIM + "/assignmentScheduleRequests"
	myGroupEl = groupPIM + "/eligibilityScheduleInstances/filterByCurrentUser(on='principal')"
	myGroupAs = groupPIM + "/assignmentScheduleInstances/filterByCurrentUser(on='principal')"
	myGroupRq = groupReqs + "/filterByCurrentUser(on='principal')"
)

func groupScenario() Scenario {
	sc := testScenario()
	sc.Groups = []Group{
		{ID: prodID, DisplayName: "Prod Deployers", RequiresApproval: true, RequiresJustification: true},
		{ID: oncallID, DisplayName: "On-call", MaxDuration: time.Hour},
		{DisplayName: "Auditors"}, // id derived from the name
	}
	sc.Eligibilities = append(sc.Eligibilities,
		Eligibility{Principal: alice, Group: "Prod Deployers"}, // member by default
		Eligibility{Principal: alice, Group: oncallID, Access: AccessOwner},
		Eligibility{Principal: alice, Group: "On-call", Access: AccessMember},
		Eligibility{Principal: bob, Group: "Prod Deployers", Access: AccessOwner},
	)
	return sc
}

func groupActivation(principal, group, access, duration string) map[string]any {
	return map[string]any{
		"accessId":    access,
		"principalId": principal,
		"groupId":     group,
		"action":      "selfActivate",
		"scheduleInfo": map[string]any{
			"startDateTime": epoch.Format(time.RFC3339),
			"expiration":    map[string]any{"type": "afterDuration", "duration": duration},
		},
		"justification": "Activate assignment.",
	}
}

// keys are an object's property names, sorted.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestGroupActivationLifecycle follows Microsoft's documented exchange
// for a user activating an eligible group membership: resolve the group,
// read the eligibility, create (PendingApproval, since the group needs
// approval), approve, read Provisioned and the live membership.
func TestGroupActivationLifecycle(t *testing.T) {
	e := startEmu(t, groupScenario())
	tok := e.Token(alice)

	// The group by name, with $select as a client resolving it asks.
	r := e.do(t, http.MethodGet, "/groups?$select=id,displayName&$filter="+url.QueryEscape("displayName eq 'Prod Deployers'"), tok, nil)
	if r.status != http.StatusOK || r.str(t, "@odata.context") != e.URL()+"/$metadata#groups(id,displayName)" {
		t.Fatalf("group lookup: %d %s", r.status, r.raw)
	}
	if vs := r.values(t); len(vs) != 1 || vs[0]["id"] != prodID || !slices.Equal(keys(vs[0]), sorted("id", "displayName")) {
		t.Fatalf("group lookup value = %v", vs)
	}
	r = e.do(t, http.MethodGet, "/groups/"+prodID, tok, nil)
	if r.status != http.StatusOK || r.str(t, "displayName") != "Prod Deployers" || r.get(t, "securityEnabled") != true {
		t.Fatalf("GET /groups/{id}: %d %s", r.status, r.raw)
	}
	e.do(t, http.MethodGet, "/groups/"+strings.Replace(prodID, "b", "c", 1), tok, nil).wantError(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.do(t, http.MethodGet, "/groups?$select=id,nonsense", tok, nil).wantError(t, http.StatusBadRequest, "BadRequest")

	// The eligibility, shaped as privilegedAccessGroupEligibilityScheduleInstance.
	r = e.do(t, http.MethodGet, myGroupEl, tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("eligibilities: %d %s", r.status, r.raw)
	}
	el := r.values(t)
	if len(el) != 3 {
		t.Fatalf("alice has %d group eligibilities, want 3: %s", len(el), r.raw)
	}
	if want := sorted("id", "startDateTime", "endDateTime", "memberType", "principalId", "accessId", "groupId", "eligibilityScheduleId"); !slices.Equal(keys(el[0]), want) {
		t.Errorf("eligibility properties = %v, want %v", keys(el[0]), want)
	}
	if el[0]["groupId"] != prodID || el[0]["accessId"] != "member" || el[0]["principalId"] != alice || el[0]["memberType"] != "Direct" {
		t.Errorf("first eligibility = %v", el[0])
	}
	// Directory role lists do not show group eligibilities, and the other way round.
	for _, v := range e.do(t, http.MethodGet, "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')", tok, nil).values(t) {
		if v["groupId"] != nil {
			t.Errorf("a directory eligibility carries a group: %v", v)
		}
	}

	// Create: 201, the documented properties, PendingApproval.
	r = e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, prodID, "member", "PT2H"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := r.str(t, "id")
	if want := sorted("@odata.context", "id", "status", "completedDateTime", "createdDateTime", "approvalId", "customData", "createdBy", "action",
		"isValidationOnly", "justification", "scheduleInfo", "ticketInfo", "accessId", "principalId", "groupId", "targetScheduleId"); !slices.Equal(keys(r.body), want) {
		t.Errorf("request properties = %v, want %v", keys(r.body), want)
	}
	if r.str(t, "@odata.context") != e.URL()+"/$metadata#identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity" ||
		r.header.Get("Location") != e.URL()+groupReqs+"/"+id {
		t.Errorf("@odata.context %q, Location %q", r.str(t, "@odata.context"), r.header.Get("Location"))
	}
	for k, v := range map[string]string{"status": "PendingApproval", "action": "selfActivate", "accessId": "member", "principalId": alice,
		"groupId": prodID, "justification": "Activate assignment."} {
		if got := r.str(t, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(r.str(t, "targetScheduleId"), prodID+"_member_") || !isGUID(r.str(t, "approvalId")) ||
		r.str(t, "createdBy", "user", "id") != alice || r.str(t, "scheduleInfo", "expiration", "duration") != "PT2H" {
		t.Errorf("create answer: %s", r.raw)
	}
	// The request lives in the groups API only.
	e.do(t, http.MethodGet, requestsPath+"/"+id, tok, nil).wantError(t, http.StatusNotFound, "ResourceNotFound")
	if vs := e.do(t, http.MethodGet, myRequestsPath, tok, nil).values(t); len(vs) != 0 {
		t.Errorf("directory requests list a group request: %v", vs)
	}
	if vs := e.do(t, http.MethodGet, myGroupRq, tok, nil).values(t); len(vs) != 1 || vs[0]["id"] != id {
		t.Errorf("my group requests = %v", vs)
	}

	// The approver, through the admin surface shared with directory roles.
	admin := e.do(t, http.MethodGet, strings.TrimSuffix(e.URL(), apiVersion)+"/_emulator/requests?status=PendingApproval", "", nil)
	if vs := admin.values(t); len(vs) != 1 || vs[0]["groupId"] != prodID || vs[0]["roleDefinitionId"] != nil {
		t.Fatalf("admin pending list = %s", admin.raw)
	}
	e.clock.Advance(time.Minute)
	if r := e.do(t, http.MethodPost, strings.TrimSuffix(e.URL(), apiVersion)+"/_emulator/requests/"+id+"/approve", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("approve: %d %s", r.status, r.raw)
	}
	r = e.do(t, http.MethodGet, groupReqs+"/"+id, tok, nil)
	if r.status != http.StatusOK || r.str(t, "status") != "Provisioned" || r.get(t, "completedDateTime") == nil {
		t.Fatalf("after approval: %d %s", r.status, r.raw)
	}

	// The live membership, shaped as privilegedAccessGroupAssignmentScheduleInstance.
	r = e.do(t, http.MethodGet, myGroupAs, tok, nil)
	as := r.values(t)
	if len(as) != 1 {
		t.Fatalf("assignments = %s", r.raw)
	}
	if want := sorted("id", "startDateTime", "endDateTime", "accessId", "principalId", "groupId", "memberType", "assignmentType", "assignmentScheduleId"); !slices.Equal(keys(as[0]), want) {
		t.Errorf("assignment properties = %v, want %v", keys(as[0]), want)
	}
	start, end := epoch.Add(time.Minute), epoch.Add(time.Minute+2*time.Hour)
	if as[0]["groupId"] != prodID || as[0]["accessId"] != "member" || as[0]["assignmentType"] != "Activated" ||
		as[0]["startDateTime"] != start.Format(time.RFC3339) || as[0]["endDateTime"] != end.Format(time.RFC3339) {
		t.Errorf("assignment = %v, want member of %s from %v to %v", as[0], prodID, start, end)
	}
	if vs := e.active(t, tok); len(vs) != 0 {
		t.Errorf("directory assignments list a group membership: %v", vs)
	}
	// Active now: another activation is refused as Graph refuses it.
	e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, prodID, "member", "PT1H")).wantError(t, http.StatusBadRequest, "RoleAssignmentExists")
	// And it ends on time.
	e.clock.Advance(2*time.Hour + time.Minute)
	if vs := e.do(t, http.MethodGet, myGroupAs, tok, nil).values(t); len(vs) != 0 {
		t.Errorf("membership still listed after its end: %v", vs)
	}
}

func TestGroupActivationWithoutApproval(t *testing.T) {
	e := startEmu(t, groupScenario())
	tok := e.Token(alice)
	r := e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, oncallID, "owner", "PT30M"))
	if r.status != http.StatusCreated || r.str(t, "status") != "Granted" || r.get(t, "approvalId") != nil {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if st := e.do(t, http.MethodGet, groupReqs+"/"+r.str(t, "id"), tok, nil).str(t, "status"); st != "Provisioned" {
		t.Errorf("status after the create = %s, want Provisioned", st)
	}
	as := e.do(t, http.MethodGet, myGroupAs, tok, nil).values(t)
	if len(as) != 1 || as[0]["accessId"] != "owner" || as[0]["groupId"] != oncallID {
		t.Errorf("assignments = %v, want owner of on-call", as)
	}
	// member access is separate from owner access.
	r = e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, oncallID, "member", "PT30M"))
	if r.status != http.StatusCreated {
		t.Errorf("member after owner: %d %s", r.status, r.raw)
	}
}

func TestGroupRefusals(t *testing.T) {
	with := func(mod func(map[string]any)) map[string]any {
		b := groupActivation(alice, prodID, "member", "PT1H")
		mod(b)
		return b
	}
	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		msg    string
	}{
		{"not eligible for owner", groupActivation(alice, prodID, "owner", "PT1H"), 400, "RoleAssignmentRequestPolicyValidationFailed", `["EligibilityRule"]`},
		{"not eligible at all", groupActivation(alice, derivedGUIDOf("pimtest group Auditors"), "member", "PT1H"), 400, "RoleAssignmentRequestPolicyValidationFailed", `["EligibilityRule"]`},
		{"too long", groupActivation(alice, oncallID, "owner", "PT2H"), 400, "RoleAssignmentRequestPolicyValidationFailed", `["ExpirationRule"]`},
		{"no justification", with(func(b map[string]any) { delete(b, "justification") }), 400, "RoleAssignmentRequestPolicyValidationFailed", `["JustificationRule"]`},
		{"access not member or owner", with(func(b map[string]any) { b["accessId"] = "admin" }), 400, "BadRequest", "accessId"},
		{"no group", with(func(b map[string]any) { delete(b, "groupId") }), 400, "BadRequest", "groupId"},
		{"no access", with(func(b map[string]any) { delete(b, "accessId") }), 400, "BadRequest", "accessId"},
		{"unknown action", with(func(b map[string]any) { b["action"] = "adminAssign" }), 400, "BadRequest", "adminAssign"},
		{"unknown group", with(func(b map[string]any) { b["groupId"] = "cccccccc-0000-4000-8000-000000000001" }), 404, "ResourceNotFound", "cccccccc"},
		{"someone else", with(func(b map[string]any) { b["principalId"] = bob }), 403, "Authorization_RequestDenied", "signed-in user"},
		{"bad duration", groupActivation(alice, prodID, "member", "two hours"), 400, "InvalidScheduleInfo", "duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmu(t, groupScenario())
			r := e.do(t, http.MethodPost, groupReqs, e.Token(alice), tc.body)
			r.wantError(t, tc.status, tc.code)
			if !strings.Contains(r.str(t, "error", "message"), tc.msg) {
				t.Errorf("message %q lacks %q", r.str(t, "error", "message"), tc.msg)
			}
			if e.CreateCount() != 0 || len(e.Requests()) != 0 {
				t.Errorf("a refused create left a request: %v", e.Requests())
			}
		})
	}
}

func TestGroupPendingAndCancel(t *testing.T) {
	e := startEmu(t, groupScenario())
	tok := e.Token(alice)
	id := e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, prodID, "member", "PT1H")).str(t, "id")
	e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, prodID, "member", "PT1H")).wantError(t, http.StatusBadRequest, "PendingRoleAssignmentRequest")
	// bob may not cancel alice's request, and the directory API does not hold it.
	e.do(t, http.MethodPost, groupReqs+"/"+id+"/cancel", e.Token(bob), nil).wantError(t, http.StatusForbidden, "Authorization_RequestDenied")
	e.do(t, http.MethodPost, requestsPath+"/"+id+"/cancel", tok, nil).wantError(t, http.StatusNotFound, "ResourceNotFound")
	if r := e.do(t, http.MethodPost, groupReqs+"/"+id+"/cancel", tok, nil); r.status != http.StatusNoContent || len(r.raw) != 0 {
		t.Fatalf("cancel: %d %s", r.status, r.raw)
	}
	if st := e.do(t, http.MethodGet, groupReqs+"/"+id, tok, nil).str(t, "status"); st != "Canceled" {
		t.Errorf("status after cancel = %s", st)
	}
	if reqs := e.Requests(); len(reqs) != 1 || reqs[0].Status != StatusCanceled || reqs[0].GroupID != prodID || reqs[0].AccessID != AccessMember {
		t.Errorf("Requests() = %+v", reqs)
	}
	e.do(t, http.MethodPost, groupReqs+"/"+id+"/cancel", tok, nil).wantError(t, http.StatusBadRequest, "InvalidRequestStatus")
	if err := e.Approve(id); err == nil {
		t.Error("a cancelled request was approved")
	}
	// Cancelled, it no longer blocks a new request.
	if r := e.do(t, http.MethodPost, groupReqs, tok, groupActivation(alice, prodID, "member", "PT1H")); r.status != http.StatusCreated {
		t.Errorf("create after cancel: %d %s", r.status, r.raw)
	}
	// A directory role request is not found under the groups API.
	rid := e.create(t, e.Token(alice), activation(alice, dbaID, "PT1H"))
	e.do(t, http.MethodGet, groupReqs+"/"+rid, tok, nil).wantError(t, http.StatusNotFound, "ResourceNotFound")
}

func TestGroupScopes(t *testing.T) {
	dirOnly := []string{"RoleAssignmentSchedule.ReadWrite.Directory", "RoleEligibilitySchedule.Read.Directory", "RoleManagement.Read.Directory"}
	readOnly := []string{"PrivilegedAssignmentSchedule.Read.AzureADGroup", "PrivilegedEligibilitySchedule.Read.AzureADGroup", "Group.Read.All"}
	tests := []struct {
		name         string
		scopes       []string
		method, path string
		body         any
		status       int
		code         string
	}{
		{"create without the groups scope", dirOnly, http.MethodPost, groupReqs, groupActivation(alice, oncallID, "owner", "PT1H"), 403, "PermissionScopeNotGranted"},
		{"create with read only", readOnly, http.MethodPost, groupReqs, groupActivation(alice, oncallID, "owner", "PT1H"), 403, "PermissionScopeNotGranted"},
		{"eligibility without the groups scope", dirOnly, http.MethodGet, myGroupEl, nil, 403, "PermissionScopeNotGranted"},
		{"assignments without the groups scope", dirOnly, http.MethodGet, myGroupAs, nil, 403, "PermissionScopeNotGranted"},
		{"group lookup without a group read scope", dirOnly, http.MethodGet, "/groups?$filter=displayName%20eq%20'On-call'", nil, 403, "Authorization_RequestDenied"},
		{"eligibility read only", readOnly, http.MethodGet, myGroupEl, nil, 200, ""},
		{"assignments read only", readOnly, http.MethodGet, myGroupAs, nil, 200, ""},
		{"group lookup with Group.Read.All", readOnly, http.MethodGet, "/groups?$filter=displayName%20eq%20'On-call'", nil, 200, ""},
		{"eligibility with ReadWrite", []string{"PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup"}, http.MethodGet, myGroupEl, nil, 200, ""},
		{"create with the least privileged scope", []string{"PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"}, http.MethodPost, groupReqs, groupActivation(alice, oncallID, "owner", "PT1H"), 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmu(t, groupScenario())
			r := e.do(t, tc.method, tc.path, e.Token(alice, WithScopes(tc.scopes...)), tc.body)
			if tc.code == "" {
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
				}
				return
			}
			r.wantError(t, tc.status, tc.code)
			if tc.code == "PermissionScopeNotGranted" && !strings.Contains(r.str(t, "error", "message"), "AzureADGroup") {
				t.Errorf("message %q does not name the groups permission", r.str(t, "error", "message"))
			}
		})
	}
}

func TestGroupPagingAndThrottling(t *testing.T) {
	sc := groupScenario()
	sc.PageSize = 1
	e := startEmu(t, sc)
	tok := e.Token(alice)
	items, links := e.collect(t, tok, myGroupEl)
	if len(items) != 3 || len(links) != 2 {
		t.Fatalf("collected %d eligibilities over %d nextLinks, want 3 over 2", len(items), len(links))
	}
	for _, l := range links {
		if !strings.HasPrefix(l, e.URL()+myGroupEl+"?") {
			t.Errorf("nextLink %q is not an absolute link to the same list", l)
		}
	}
	groups, _ := e.collect(t, tok, "/groups")
	if len(groups) != 3 {
		t.Errorf("collected %d groups, want 3", len(groups))
	}

	e.SetFaults(Faults{ThrottleEvery: 1, RetryAfter: "0.5"})
	r := e.do(t, http.MethodGet, myGroupEl, tok, nil)
	r.wantError(t, http.StatusTooManyRequests, "TooManyRequests")
	if r.header.Get("Retry-After") != "0.5" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	e.SetFaults(Faults{AssignmentReadStatus: http.StatusServiceUnavailable})
	e.do(t, http.MethodGet, myGroupAs, tok, nil).wantError(t, http.StatusServiceUnavailable, "ServiceUnavailable")
}

func TestGroupScenario(t *testing.T) {
	base := func(mod func(*Scenario)) Scenario {
		sc := groupScenario()
		mod(&sc)
		return sc
	}
	tests := map[string]struct {
		sc   Scenario
		want string
	}{
		"role and group": {base(func(sc *Scenario) {
			sc.Eligibilities = []Eligibility{{Principal: alice, Role: "Reader", Group: "On-call"}}
		}), "exactly one of role and group"},
		"neither": {base(func(sc *Scenario) { sc.Eligibilities = []Eligibility{{Principal: alice}} }), "exactly one of role and group"},
		"bad access": {base(func(sc *Scenario) {
			sc.Eligibilities = []Eligibility{{Principal: alice, Group: "On-call", Access: "admin"}}
		}), "not member or owner"},
		"access with a role": {base(func(sc *Scenario) {
			sc.Eligibilities = []Eligibility{{Principal: alice, Role: "Reader", Access: "owner"}}
		}), "access is for a group"},
		"unknown group":        {base(func(sc *Scenario) { sc.Eligibilities = []Eligibility{{Principal: alice, Group: "Nope"}} }), "not a group"},
		"duplicate group name": {base(func(sc *Scenario) { sc.Groups = append(sc.Groups, Group{DisplayName: "on-call"}) }), "groups[3]: duplicate displayName"},
		"group id not a GUID":  {base(func(sc *Scenario) { sc.Groups = append(sc.Groups, Group{ID: "g", DisplayName: "G"}) }), "not a GUID"},
		"active unknown group": {base(func(sc *Scenario) { sc.Active = []Assignment{{Principal: alice, Group: "Nope"}} }), "active[0]: group"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewServer(tc.sc); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewServer error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// A membership active at start is listed, as assigned, in the groups API only.
	sc := groupScenario()
	sc.Active = []Assignment{{Principal: alice, Group: "On-call", Access: AccessOwner, Duration: time.Hour}}
	e := startEmu(t, sc)
	as := e.do(t, http.MethodGet, myGroupAs, e.Token(alice), nil).values(t)
	if len(as) != 1 || as[0]["assignmentType"] != "Assigned" || as[0]["accessId"] != "owner" {
		t.Errorf("assignments at start = %v", as)
	}
	if vs := e.active(t, e.Token(alice)); len(vs) != 0 {
		t.Errorf("directory assignments list a group membership: %v", vs)
	}
}
