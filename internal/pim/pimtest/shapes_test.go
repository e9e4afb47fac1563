package pimtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRequestShape checks the create response against the documented
// unifiedRoleAssignmentScheduleRequest: names, casing, nesting, values.
func TestRequestShape(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice, WithMFA())
	r := e.do(t, http.MethodPost, requestsPath, tok, activation(alice, treasuryID, "PT15M"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, want 201; %s", r.status, r.raw)
	}
	id := r.str(t, "id")
	if !isGUID(id) {
		t.Fatalf("id %q is not a GUID", id)
	}
	if got := r.str(t, "@odata.context"); got != e.URL()+"/$metadata#roleManagement/directory/roleAssignmentScheduleRequests/$entity" {
		t.Errorf("@odata.context = %q", got)
	}
	want := map[string]string{
		"status":           "Granted",
		"action":           "selfActivate",
		"principalId":      alice,
		"roleDefinitionId": treasuryID,
		"directoryScopeId": "/",
		"justification":    "tests",
	}
	for k, v := range want {
		if got := r.str(t, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !isGUID(r.str(t, "targetScheduleId")) {
		t.Errorf("targetScheduleId is not a GUID: %s", r.raw)
	}
	if r.get(t, "approvalId") != nil {
		t.Errorf("approvalId = %v, want null for a role without approval", r.get(t, "approvalId"))
	}
	if created, err := time.Parse(time.RFC3339Nano, r.str(t, "createdDateTime")); err != nil || !created.Equal(epoch) {
		t.Errorf("createdDateTime = %q (%v), want %v", r.str(t, "createdDateTime"), err, epoch)
	}
	if got := r.str(t, "scheduleInfo", "startDateTime"); got != epoch.Format(time.RFC3339) {
		t.Errorf("scheduleInfo.startDateTime = %q", got)
	}
	if got := r.str(t, "scheduleInfo", "expiration", "type"); got != "afterDuration" {
		t.Errorf("scheduleInfo.expiration.type = %q", got)
	}
	if got := r.str(t, "scheduleInfo", "expiration", "duration"); got != "PT15M" {
		t.Errorf("scheduleInfo.expiration.duration = %q", got)
	}
	if got := r.str(t, "ticketInfo", "ticketNumber"); got != "CHG-1" {
		t.Errorf("ticketInfo.ticketNumber = %q", got)
	}
	if got := r.str(t, "ticketInfo", "ticketSystem"); got != "ServiceNow" {
		t.Errorf("ticketInfo.ticketSystem = %q", got)
	}
	if got := r.header.Get("Location"); got != e.URL()+requestsPath+"/"+id {
		t.Errorf("Location = %q", got)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
	}

	g := e.do(t, http.MethodGet, requestsPath+"/"+id, tok, nil)
	if g.status != http.StatusOK || g.str(t, "id") != id || g.str(t, "status") != "Provisioned" {
		t.Fatalf("GET: status %d, want 200 with the request Provisioned; %s", g.status, g.raw)
	}
	if g.str(t, "completedDateTime") == "" {
		t.Errorf("completedDateTime empty once provisioned")
	}
}

// TestApprovalRequestShape checks a request that waits for an approver.
func TestApprovalRequestShape(t *testing.T) {
	e := startEmu(t, testScenario())
	r := e.do(t, http.MethodPost, requestsPath, e.Token(alice), activation(alice, dbaID, "PT1H30M"))
	if r.status != http.StatusCreated || r.str(t, "status") != "PendingApproval" {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if !isGUID(r.str(t, "approvalId")) {
		t.Errorf("approvalId is not a GUID: %s", r.raw)
	}
	if r.get(t, "completedDateTime") != nil {
		t.Errorf("completedDateTime = %v while pending, want null", r.get(t, "completedDateTime"))
	}
}
