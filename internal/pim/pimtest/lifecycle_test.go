package pimtest

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

const (
	assignmentsPath  = "/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')"
	eligibilityPath  = "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')"
	myRequestsPath   = requestsPath + "/filterByCurrentUser(on='principal')"
	roleDefsPath     = "/roleManagement/directory/roleDefinitions"
	adminRequestPath = "/_emulator/requests"
)

func (e *emu) status(t *testing.T, tok, id string) string {
	t.Helper()
	r := e.do(t, http.MethodGet, requestsPath+"/"+id, tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET request %s: %d %s", id, r.status, r.raw)
	}
	return r.str(t, "status")
}

func (e *emu) create(t *testing.T, tok string, body map[string]any) string {
	t.Helper()
	r := e.do(t, http.MethodPost, requestsPath, tok, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	return r.str(t, "id")
}

// active lists the caller's live assignment instances.
func (e *emu) active(t *testing.T, tok string) []map[string]any {
	t.Helper()
	r := e.do(t, http.MethodGet, assignmentsPath, tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("instances: %d %s", r.status, r.raw)
	}
	return r.values(t)
}

func timeField(t *testing.T, m map[string]any, k string) time.Time {
	t.Helper()
	s, _ := m[k].(string)
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %v: %v", k, m[k], err)
	}
	return v
}

func TestAutomaticApprovalIsLazyOnTheClock(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	id := e.create(t, tok, activation(alice, autoOKID, "PT30M"))
	e.clock.Advance(5*time.Minute - time.Second)
	if got := e.status(t, tok, id); got != StatusPendingApproval {
		t.Fatalf("before the approver's delay: %s, want PendingApproval", got)
	}
	if got := e.active(t, tok); len(got) != 0 {
		t.Fatalf("active before approval: %v", got)
	}
	e.clock.Advance(time.Second)
	if got := e.status(t, tok, id); got != StatusProvisioned {
		t.Fatalf("at the approver's delay: %s, want Provisioned", got)
	}
	act := e.active(t, tok)
	if len(act) != 1 {
		t.Fatalf("active instances: %v, want one", act)
	}
	a := act[0]
	start, end := timeField(t, a, "startDateTime"), timeField(t, a, "endDateTime")
	if !start.Equal(epoch.Add(5*time.Minute)) || !end.Equal(start.Add(30*time.Minute)) {
		t.Errorf("instance %v..%v, want it to start at approval and last 30m", start, end)
	}
	for k, want := range map[string]string{"principalId": alice, "roleDefinitionId": autoOKID, "directoryScopeId": "/", "assignmentType": "Activated", "memberType": "Direct"} {
		if a[k] != want {
			t.Errorf("instance %s = %v, want %q", k, a[k], want)
		}
	}
	if !isGUID(a["id"].(string)) || !isGUID(a["roleAssignmentScheduleId"].(string)) {
		t.Errorf("instance ids: %v", a)
	}
	e.clock.Advance(30*time.Minute - time.Nanosecond)
	if len(e.active(t, tok)) != 1 {
		t.Fatal("assignment gone before its endDateTime")
	}
	e.clock.Advance(time.Nanosecond)
	if got := e.active(t, tok); len(got) != 0 {
		t.Fatalf("assignment still listed at its endDateTime: %v", got)
	}
	if got := e.status(t, tok, id); got != StatusProvisioned {
		t.Errorf("request after expiry: %s, want it to stay Provisioned", got)
	}
	// Expired, the role can be activated again.
	e.create(t, tok, activation(alice, autoOKID, "PT30M"))
}

func TestAutomaticDenial(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	id := e.create(t, tok, activation(alice, autoNoID, "PT30M"))
	e.clock.Advance(10 * time.Minute)
	if got := e.status(t, tok, id); got != StatusDenied {
		t.Fatalf("status %s, want Denied", got)
	}
	if got := e.active(t, tok); len(got) != 0 {
		t.Fatalf("a denied request left an assignment: %v", got)
	}
	if got := e.Requests()[0]; got.Status != StatusDenied || got.ID != id {
		t.Errorf("Requests()[0] = %+v", got)
	}
}

func TestManualApprover(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	id := e.create(t, tok, activation(alice, dbaID, "PT2H"))
	e.clock.Advance(24 * time.Hour)
	if got := e.status(t, tok, id); got != StatusPendingApproval {
		t.Fatalf("a manual approver decided alone: %s", got)
	}
	if err := e.Approve(id); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	if got := e.status(t, tok, id); got != StatusProvisioned {
		t.Fatalf("after Approve: %s", got)
	}
	act := e.active(t, tok)
	if len(act) != 1 || !timeField(t, act[0], "endDateTime").Equal(epoch.Add(26*time.Hour)) {
		t.Fatalf("after Approve: instances %v, want one ending 2h after approval", act)
	}
	if err := e.Approve(id); !errors.Is(err, ErrNotPending) {
		t.Errorf("second Approve = %v, want ErrNotPending", err)
	}
	if err := e.Deny("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Deny(unknown) = %v, want ErrNotFound", err)
	}
	bobTok := e.Token(bob)
	bobID := e.create(t, bobTok, activation(bob, dbaID, "PT1H"))
	if err := e.Deny(bobID); err != nil {
		t.Fatalf("Deny: %v", err)
	}
	if got := e.status(t, bobTok, bobID); got != StatusDenied {
		t.Fatalf("after Deny: %s", got)
	}
}

func TestAdminSurface(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	first := e.create(t, tok, activation(alice, dbaID, "PT1H"))
	second := e.create(t, e.Token(bob), activation(bob, dbaID, "PT1H"))
	e.create(t, tok, activation(alice, readerID, "PT15M"))
	hits := e.HitCount()

	r := e.do(t, http.MethodGet, e.URL()[:len(e.URL())-len("/v1.0")]+adminRequestPath+"?status=PendingApproval", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("admin list: %d %s", r.status, r.raw)
	}
	vs := r.values(t)
	if len(vs) != 2 || vs[0]["id"] != first || vs[1]["id"] != second {
		t.Fatalf("pending: %s, want %s and %s", r.raw, first, second)
	}
	root := e.URL()[:len(e.URL())-len("/v1.0")]
	if r := e.do(t, http.MethodPost, root+adminRequestPath+"/"+first+"/approve", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("approve: %d %s", r.status, r.raw)
	}
	if r := e.do(t, http.MethodPost, root+adminRequestPath+"/"+second+"/deny", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("deny: %d %s", r.status, r.raw)
	}
	e.do(t, http.MethodPost, root+adminRequestPath+"/"+second+"/deny", "", nil).wantError(t, http.StatusConflict, "InvalidRequestStatus")
	e.do(t, http.MethodPost, root+adminRequestPath+"/nope/approve", "", nil).wantError(t, http.StatusNotFound, "ResourceNotFound")
	e.do(t, http.MethodGet, root+adminRequestPath+"/"+first+"/approve", "", nil).wantError(t, http.StatusMethodNotAllowed, "Request_BadRequest")
	e.do(t, http.MethodGet, root+"/_emulator/other", "", nil).wantError(t, http.StatusNotFound, "NotFound")

	got := map[string]string{}
	for _, q := range e.Requests() {
		got[q.ID] = q.Status
	}
	if got[first] != StatusProvisioned || got[second] != StatusDenied {
		t.Errorf("statuses after admin actions: %v", got)
	}
	if e.HitCount() != hits {
		t.Errorf("HitCount moved from %d to %d over admin calls", hits, e.HitCount())
	}
}

func TestAdminToken(t *testing.T) {
	e := startEmu(t, testScenario())
	root := e.URL()[:len(e.URL())-len("/v1.0")]
	r := e.do(t, http.MethodPost, root+"/_emulator/token", "", map[string]any{"name": "alice", "mfa": true})
	if r.status != http.StatusOK || r.str(t, "token_type") != "Bearer" || r.get(t, "expires_in") != float64(3600) {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	tok := r.str(t, "access_token")
	// The MFA claim carries through: Treasury needs it.
	e.create(t, tok, activation(alice, treasuryID, "PT15M"))

	r = e.do(t, http.MethodPost, root+"/_emulator/token", "", map[string]any{"oid": bob})
	if r.status != http.StatusOK {
		t.Fatalf("token by oid: %d %s", r.status, r.raw)
	}
	bobTok := r.str(t, "access_token")
	b := activation(bob, treasuryID, "PT15M")
	e.do(t, http.MethodPost, requestsPath, bobTok, b).wantError(t, 400, "RoleAssignmentRequestPolicyValidationFailed")
	e.clock.Advance(time.Hour)
	e.do(t, http.MethodGet, assignmentsPath, bobTok, nil).wantError(t, 401, "InvalidAuthenticationToken")
	e.do(t, http.MethodPost, root+"/_emulator/token", "", map[string]any{"oid": "55555555-5555-4555-8555-555555555555"}).wantError(t, 400, "SubjectNotFound")
	e.do(t, http.MethodPost, root+"/_emulator/token", "", "not an object").wantError(t, 400, "BadRequest")
}

func TestCancel(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	id := e.create(t, tok, activation(alice, dbaID, "PT1H"))
	e.do(t, http.MethodPost, requestsPath+"/"+id+"/cancel", e.Token(bob), nil).wantError(t, 403, "Authorization_RequestDenied")
	r := e.do(t, http.MethodPost, requestsPath+"/"+id+"/cancel", tok, nil)
	if r.status != http.StatusNoContent || len(r.raw) != 0 {
		t.Fatalf("cancel: %d %q, want 204 with no body", r.status, r.raw)
	}
	if got := e.status(t, tok, id); got != StatusCanceled {
		t.Fatalf("after cancel: %s", got)
	}
	e.do(t, http.MethodPost, requestsPath+"/"+id+"/cancel", tok, nil).wantError(t, 400, "InvalidRequestStatus")
	if err := e.Approve(id); !errors.Is(err, ErrNotPending) {
		t.Errorf("Approve after cancel = %v, want ErrNotPending", err)
	}
	// Canceled, it no longer blocks a new request; provisioned, it cannot be canceled.
	again := e.create(t, tok, activation(alice, dbaID, "PT1H"))
	if err := e.Approve(again); err != nil {
		t.Fatal(err)
	}
	e.do(t, http.MethodPost, requestsPath+"/"+again+"/cancel", tok, nil).wantError(t, 400, "InvalidRequestStatus")
	granted := e.create(t, tok, activation(alice, readerID, "PT15M"))
	e.do(t, http.MethodPost, requestsPath+"/"+granted+"/cancel", tok, nil).wantError(t, 400, "InvalidRequestStatus")
}

func TestSelfDeactivateEndsTheAssignment(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	e.create(t, tok, activation(alice, readerID, "PT1H"))
	e.clock.Advance(10 * time.Minute)
	body := map[string]any{"action": "selfDeactivate", "principalId": alice, "roleDefinitionId": readerID, "directoryScopeId": "/"}
	r := e.do(t, http.MethodPost, requestsPath, tok, body)
	if r.status != http.StatusCreated || r.str(t, "status") != StatusRevoked {
		t.Fatalf("deactivate: %d %s", r.status, r.raw)
	}
	if got := e.active(t, tok); len(got) != 0 {
		t.Fatalf("still active after selfDeactivate: %v", got)
	}
	e.create(t, tok, activation(alice, readerID, "PT1H"))
}

func TestPreActiveAssignments(t *testing.T) {
	sc := testScenario()
	sc.Active = []Assignment{
		{Principal: alice, Role: "Reader", Duration: time.Hour},
		{Principal: alice, Role: dbaID}, // permanent
		{Principal: bob, Role: "Reader", End: epoch.Add(2 * time.Hour)},
	}
	e := startEmu(t, sc)
	tok := e.Token(alice)
	act := e.active(t, tok)
	if len(act) != 2 {
		t.Fatalf("alice's active: %v, want 2", act)
	}
	for _, a := range act {
		if a["assignmentType"] != "Assigned" || a["principalId"] != alice {
			t.Errorf("pre-active instance %v, want assignmentType Assigned for alice", a)
		}
	}
	if act[1]["roleDefinitionId"] != dbaID || act[1]["endDateTime"] != nil {
		t.Errorf("permanent assignment %v, want endDateTime null", act[1])
	}
	e.do(t, http.MethodPost, requestsPath, tok, activation(alice, readerID, "PT15M")).wantError(t, 400, "RoleAssignmentExists")
	e.clock.Advance(time.Hour)
	if got := e.active(t, tok); len(got) != 1 || got[0]["roleDefinitionId"] != dbaID {
		t.Fatalf("after an hour: %v, want only the permanent one", got)
	}
	e.create(t, tok, activation(alice, readerID, "PT15M"))
	if got := e.active(t, e.Token(bob)); len(got) != 1 || !timeField(t, got[0], "endDateTime").Equal(epoch.Add(2*time.Hour)) {
		t.Fatalf("bob's active: %v", got)
	}
}

func TestListsAreTheCallers(t *testing.T) {
	e := startEmu(t, testScenario())
	aliceTok, bobTok := e.Token(alice), e.Token(bob)
	a1 := e.create(t, aliceTok, activation(alice, readerID, "PT15M"))
	a2 := e.create(t, aliceTok, activation(alice, dbaID, "PT15M"))
	e.create(t, bobTok, activation(bob, readerID, "PT15M"))

	r := e.do(t, http.MethodGet, myRequestsPath, aliceTok, nil)
	if got := r.str(t, "@odata.context"); got != e.URL()+"/$metadata#Collection(unifiedRoleAssignmentScheduleRequest)" {
		t.Errorf("@odata.context = %q", got)
	}
	if vs := r.values(t); len(vs) != 2 || vs[0]["id"] != a1 || vs[1]["id"] != a2 {
		t.Fatalf("alice's requests: %s", r.raw)
	}
	r = e.do(t, http.MethodGet, myRequestsPath+"?$filter=status eq 'PendingApproval' and roleDefinitionId eq '"+dbaID+"'", aliceTok, nil)
	if vs := r.values(t); len(vs) != 1 || vs[0]["id"] != a2 {
		t.Fatalf("filtered: %s", r.raw)
	}
	if vs := e.do(t, http.MethodGet, requestsPath, aliceTok, nil).values(t); len(vs) != 3 {
		t.Fatalf("unfiltered collection: %d requests, want all 3", len(vs))
	}

	r = e.do(t, http.MethodGet, assignmentsPath, bobTok, nil)
	if got := r.str(t, "@odata.context"); got != e.URL()+"/$metadata#Collection(unifiedRoleAssignmentScheduleInstance)" {
		t.Errorf("@odata.context = %q", got)
	}
	if vs := r.values(t); len(vs) != 1 || vs[0]["principalId"] != bob {
		t.Fatalf("bob's instances: %s", r.raw)
	}

	r = e.do(t, http.MethodGet, eligibilityPath, bobTok, nil)
	if got := r.str(t, "@odata.context"); got != e.URL()+"/$metadata#Collection(unifiedRoleEligibilityScheduleInstance)" {
		t.Errorf("@odata.context = %q", got)
	}
	vs := r.values(t)
	if len(vs) != 2 {
		t.Fatalf("bob's eligibilities: %s", r.raw)
	}
	want := []string{"id", "principalId", "roleDefinitionId", "directoryScopeId", "appScopeId", "startDateTime", "endDateTime", "memberType", "roleEligibilityScheduleId"}
	for _, k := range want {
		if _, ok := vs[0][k]; !ok {
			t.Errorf("eligibility instance has no %q: %s", k, r.raw)
		}
	}
	if len(vs[0]) != len(want) {
		t.Errorf("eligibility instance has %d properties, want %d: %v", len(vs[0]), len(want), vs[0])
	}
	if vs[0]["principalId"] != bob || vs[0]["roleDefinitionId"] != readerID || vs[1]["roleDefinitionId"] != dbaID || vs[0]["memberType"] != "Direct" {
		t.Errorf("bob's eligibilities: %s", r.raw)
	}
	if vs := e.do(t, http.MethodGet, eligibilityPath, e.Token(carol), nil).values(t); len(vs) != 0 {
		t.Errorf("carol is eligible for nothing, got %v", vs)
	}
}

func TestRoleDefinitions(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	r := e.do(t, http.MethodGet, roleDefsPath+"?$filter=displayName eq 'Ops O''Brien'", tok, nil)
	if r.str(t, "@odata.context") != e.URL()+"/$metadata#roleManagement/directory/roleDefinitions" {
		t.Errorf("@odata.context = %q", r.str(t, "@odata.context"))
	}
	vs := r.values(t)
	if len(vs) != 1 || vs[0]["displayName"] != "Ops O'Brien" || vs[0]["id"] != derivedGUID("Ops O'Brien") {
		t.Fatalf("quoted name lookup: %s", r.raw)
	}
	for _, k := range []string{"id", "displayName", "description", "isBuiltIn", "isEnabled", "templateId", "resourceScopes", "rolePermissions"} {
		if _, ok := vs[0][k]; !ok {
			t.Errorf("role definition has no %q", k)
		}
	}
	if vs := e.do(t, http.MethodGet, roleDefsPath+"?$filter=displayName eq 'database administrator'", tok, nil).values(t); len(vs) != 1 || vs[0]["id"] != dbaID {
		t.Errorf("case-insensitive name lookup: %v", vs)
	}
	if vs := e.do(t, http.MethodGet, roleDefsPath+"?$filter=displayName eq 'Nobody'", tok, nil).values(t); len(vs) != 0 {
		t.Errorf("unknown name: %v, want an empty value", vs)
	}
	if vs := e.do(t, http.MethodGet, roleDefsPath, tok, nil).values(t); len(vs) != len(testScenario().Roles) {
		t.Errorf("all roles: %d, want %d", len(vs), len(testScenario().Roles))
	}
	one := e.do(t, http.MethodGet, roleDefsPath+"/"+treasuryID, tok, nil)
	if one.status != 200 || one.str(t, "displayName") != "Treasury" || one.str(t, "@odata.context") != e.URL()+"/$metadata#roleManagement/directory/roleDefinitions/$entity" {
		t.Errorf("role by id: %d %s", one.status, one.raw)
	}
}

// An administrator's Remove ends the assignment at once, whoever holds it
// and however it was made; the request that made it stays Provisioned, and
// the removal is recorded as an adminRemove request.
func TestRevoke(t *testing.T) {
	sc := testScenario()
	sc.Active = []Assignment{{Principal: bob, Role: "Reader"}} // permanent
	e := startEmu(t, sc)
	aliceTok, bobTok := e.Token(alice), e.Token(bob)
	id := e.create(t, aliceTok, activation(alice, dbaID, "PT1H"))
	if err := e.Approve(id); err != nil {
		t.Fatal(err)
	}
	if got := e.active(t, aliceTok); len(got) != 1 {
		t.Fatalf("alice's active after approval: %v", got)
	}
	e.clock.Advance(time.Minute)

	if err := e.Revoke(alice, "database administrator"); err != nil { // by display name, any case
		t.Fatalf("Revoke: %v", err)
	}
	if got := e.active(t, aliceTok); len(got) != 0 {
		t.Fatalf("alice's active after Revoke: %v", got)
	}
	if got := e.status(t, aliceTok, id); got != StatusProvisioned {
		t.Errorf("the activation request is %s after Revoke, want Provisioned", got)
	}
	reqs := e.Requests()
	if last := reqs[len(reqs)-1]; last.Action != ActionAdminRemove || last.Status != StatusRevoked || last.Principal != alice || last.RoleDefinitionID != dbaID {
		t.Errorf("removal recorded as %+v", last)
	}
	if err := e.Revoke(alice, dbaID); !errors.Is(err, ErrNotActive) {
		t.Errorf("second Revoke: %v, want ErrNotActive", err)
	}
	// The role can be activated again.
	e.create(t, aliceTok, activation(alice, dbaID, "PT1H"))

	// The admin surface, on a permanent assignment.
	revoke := e.URL()[:len(e.URL())-len("/v1.0")] + "/_emulator/assignments/revoke"
	body := map[string]any{"principal": bob, "role": readerID}
	if r := e.do(t, http.MethodPost, revoke, "", body); r.status != http.StatusNoContent {
		t.Fatalf("admin revoke: %d %s", r.status, r.raw)
	}
	if got := e.active(t, bobTok); len(got) != 0 {
		t.Fatalf("bob's active after admin revoke: %v", got)
	}
	e.do(t, http.MethodPost, revoke, "", body).wantError(t, http.StatusNotFound, "RoleAssignmentDoesNotExist")
	e.do(t, http.MethodPost, revoke, "", map[string]any{"principal": bob, "role": "No Such Role"}).
		wantError(t, http.StatusNotFound, "RoleAssignmentDoesNotExist")
	e.do(t, http.MethodGet, revoke, "", nil).wantError(t, http.StatusMethodNotAllowed, "Request_BadRequest")
}
