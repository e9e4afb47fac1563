package pimtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCreateRefusals(t *testing.T) {
	e := startEmu(t, testScenario())
	with := func(role, duration string, edit func(map[string]any)) map[string]any {
		b := activation(alice, role, duration)
		if edit != nil {
			edit(b)
		}
		return b
	}
	drop := func(keys ...string) func(map[string]any) {
		return func(b map[string]any) {
			for _, k := range keys {
				delete(b, k)
			}
		}
	}
	set := func(k string, v any) func(map[string]any) { return func(b map[string]any) { b[k] = v } }
	expire := func(exp map[string]any) func(map[string]any) {
		return set("scheduleInfo", map[string]any{"startDateTime": epoch.Format(time.RFC3339), "expiration": exp})
	}
	policy := "RoleAssignmentRequestPolicyValidationFailed"
	tests := []struct {
		name    string
		token   string
		body    any
		status  int
		code    string
		message string // exact, when set
	}{
		{"not eligible", e.Token(carol), activation(carol, readerID, "PT15M"), 400, policy, `The following policy rules failed: ["EligibilityRule"]`},
		{"longer than the role allows", e.Token(alice), with(readerID, "PT1H0M1S", nil), 400, policy, `The following policy rules failed: ["ExpirationRule"]`},
		{"no expiration", e.Token(alice), with(readerID, "", expire(map[string]any{"type": "noExpiration"})), 400, policy, `The following policy rules failed: ["ExpirationRule"]`},
		{"end date past the maximum", e.Token(alice), with(readerID, "", expire(map[string]any{"type": "afterDateTime", "endDateTime": epoch.Add(2 * time.Hour).Format(time.RFC3339)})), 400, policy, `The following policy rules failed: ["ExpirationRule"]`},
		{"justification missing", e.Token(alice, WithMFA()), with(treasuryID, "PT15M", set("justification", "  ")), 400, policy, `The following policy rules failed: ["JustificationRule"]`},
		{"ticket missing", e.Token(alice, WithMFA()), with(treasuryID, "PT15M", drop("ticketInfo")), 400, policy, `The following policy rules failed: ["TicketingRule"]`},
		{"no MFA", e.Token(alice), with(treasuryID, "PT15M", nil), 400, policy, `The following policy rules failed: ["MfaRule"]`},
		{"several rules", e.Token(alice), with(treasuryID, "PT15M", drop("justification", "ticketInfo")), 400, policy, `The following policy rules failed: ["JustificationRule","TicketingRule","MfaRule"]`},
		{"not eligible and too long", e.Token(bob), activation(bob, autoOKID, "PT9H"), 400, policy, `The following policy rules failed: ["EligibilityRule","ExpirationRule"]`},
		{"someone else's principal", e.Token(bob), activation(alice, readerID, "PT15M"), 403, "Authorization_RequestDenied", ""},
		{"unknown user", e.Token("44444444-4444-4444-8444-444444444444"), activation("44444444-4444-4444-8444-444444444444", readerID, "PT15M"), 400, "SubjectNotFound", ""},
		{"unknown role", e.Token(alice), with("bbbbbbbb-0000-4000-8000-000000000000", "PT15M", nil), 404, "RoleNotFound", ""},
		{"admin action", e.Token(alice), with(readerID, "PT15M", set("action", "adminAssign")), 400, "BadRequest", ""},
		{"no principal", e.Token(alice), with(readerID, "PT15M", drop("principalId")), 400, "BadRequest", ""},
		{"no scope", e.Token(alice), with(readerID, "PT15M", drop("directoryScopeId")), 400, "BadRequest", ""},
		{"not an ISO duration", e.Token(alice), with(readerID, "15m", nil), 400, "InvalidScheduleInfo", ""},
		{"zero duration", e.Token(alice), with(readerID, "PT0S", nil), 400, "InvalidScheduleInfo", ""},
		{"unknown expiration type", e.Token(alice), with(readerID, "", expire(map[string]any{"type": "whenever"})), 400, "InvalidScheduleInfo", ""},
		{"body not JSON", e.Token(alice), "{", 400, "BadRequest", ""},
		{"deactivate what is not active", e.Token(alice), with(readerID, "", set("action", "selfDeactivate")), 400, "RoleAssignmentDoesNotExist", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, requestsPath, tc.token, tc.body)
			r.wantError(t, tc.status, tc.code)
			if tc.message != "" && r.str(t, "error", "message") != tc.message {
				t.Errorf("message = %q, want %q", r.str(t, "error", "message"), tc.message)
			}
		})
	}
	if n := e.CreateCount(); n != 0 {
		t.Errorf("CreateCount = %d after only refusals, want 0", n)
	}
}

func TestDuplicateRequests(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	if r := e.do(t, http.MethodPost, requestsPath, tok, activation(alice, dbaID, "PT1H")); r.status != 201 {
		t.Fatalf("first request: %d %s", r.status, r.raw)
	}
	e.do(t, http.MethodPost, requestsPath, tok, activation(alice, dbaID, "PT1H")).wantError(t, 400, "PendingRoleAssignmentRequest")
	// Another user's pending request for the role is no obstacle.
	if r := e.do(t, http.MethodPost, requestsPath, e.Token(bob), activation(bob, dbaID, "PT1H")); r.status != 201 {
		t.Fatalf("bob's request: %d %s", r.status, r.raw)
	}
	if r := e.do(t, http.MethodPost, requestsPath, tok, activation(alice, readerID, "PT15M")); r.status != 201 {
		t.Fatalf("reader: %d %s", r.status, r.raw)
	}
	e.do(t, http.MethodPost, requestsPath, tok, activation(alice, readerID, "PT15M")).wantError(t, 400, "RoleAssignmentExists")
	if n := e.CreateCount(); n != 3 {
		t.Errorf("CreateCount = %d, want 3", n)
	}
}

func TestAuthentication(t *testing.T) {
	e := startEmu(t, testScenario())
	good := e.Token(alice)
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + b64.EncodeToString([]byte(`{"oid":"`+bob+`","exp":9999999999}`)) + "." + parts[2]
	short := e.Token(alice, WithTokenLifetime(time.Minute))
	path := "/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')"
	for name, tok := range map[string]string{"none": "", "not a JWT": "abc", "forged payload": forged, "empty signature": parts[0] + "." + parts[1] + "."} {
		t.Run(name, func(t *testing.T) {
			r := e.do(t, http.MethodGet, path, tok, nil)
			r.wantError(t, 401, "InvalidAuthenticationToken")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header on 401")
			}
		})
	}
	if r := e.do(t, http.MethodGet, path, short, nil); r.status != 200 {
		t.Fatalf("fresh token: %d %s", r.status, r.raw)
	}
	e.clock.Advance(time.Minute)
	r := e.do(t, http.MethodGet, path, short, nil)
	r.wantError(t, 401, "InvalidAuthenticationToken")
	if !strings.Contains(r.str(t, "error", "message"), "expired") {
		t.Errorf("expired token message = %q", r.str(t, "error", "message"))
	}
	if r := e.do(t, http.MethodGet, path, good, nil); r.status != 200 {
		t.Fatalf("hour-long token after a minute: %d %s", r.status, r.raw)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := startEmu(t, testScenario())
	tok := e.Token(alice)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", requestsPath + "/00000000-0000-4000-8000-000000000000", 404, "ResourceNotFound"},
		{"POST", requestsPath + "/00000000-0000-4000-8000-000000000000/cancel", 404, "ResourceNotFound"},
		{"DELETE", requestsPath, 405, "Request_BadRequest"},
		{"POST", requestsPath + "/filterByCurrentUser(on='principal')", 405, "Request_BadRequest"},
		{"GET", requestsPath + "/filterByCurrentUser(on='approver')", 400, "BadRequest"},
		{"GET", requestsPath + "/filterByCurrentUser(on='principal')?$filter=bogus eq 'x'", 400, "BadRequest"},
		{"GET", requestsPath + "/filterByCurrentUser(on='principal')?$filter=status ne 'x'", 400, "BadRequest"},
		{"GET", requestsPath + "/filterByCurrentUser(on='principal')?$skiptoken=nonsense", 400, "BadRequest"},
		{"GET", "/roleManagement/directory/roleDefinitions/" + "bbbbbbbb-0000-4000-8000-000000000000", 404, "Request_ResourceNotFound"},
		{"GET", "/roleManagement/directory/somethingElse", 400, "BadRequest"},
		{"GET", "/me", 400, "BadRequest"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e.do(t, tc.method, tc.path, tok, nil).wantError(t, tc.status, tc.code)
		})
	}
	t.Run("beta", func(t *testing.T) {
		e.do(t, http.MethodGet, strings.TrimSuffix(e.URL(), "/v1.0")+"/beta/me", tok, nil).wantError(t, 404, "BadRequest")
	})
}

func TestClientRequestIDEchoed(t *testing.T) {
	e := startEmu(t, testScenario())
	req, _ := http.NewRequest(http.MethodGet, e.URL()+requestsPath+"/nope", nil)
	req.Header.Set("Authorization", "Bearer "+e.Token(alice))
	req.Header.Set("client-request-id", "my-correlation-id")
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("client-request-id"); got != "my-correlation-id" {
		t.Errorf("client-request-id = %q, want it echoed", got)
	}
}
