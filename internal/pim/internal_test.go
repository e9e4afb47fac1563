package pim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{" 1.25 ", 1250 * time.Millisecond, true},
		{"0", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true}, // in the past: at once
		{"", 0, false},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
		{"1e9", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestISODuration(t *testing.T) {
	tests := map[time.Duration]string{
		15 * time.Minute:               "PT15M",
		time.Hour + 30*time.Minute:     "PT1H30M",
		8 * time.Hour:                  "PT8H",
		45 * time.Second:               "PT45S",
		1500 * time.Millisecond:        "PT2S",
		time.Hour + 5*time.Second:      "PT1H5S",
		26*time.Hour + time.Minute + 1: "PT26H1M1S",
	}
	for d, want := range tests {
		if got := isoDuration(d); got != want {
			t.Errorf("isoDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

func graphErr(t *testing.T, status int, body string) *GraphError {
	t.Helper()
	resp := &http.Response{StatusCode: status, Header: http.Header{"Request-Id": {"hdr-id"}}}
	return newGraphError(resp, []byte(body), time.Now())
}

func TestGraphErrorDecoding(t *testing.T) {
	e := graphErr(t, 400, `{"error":{"code":"RoleAssignmentRequestPolicyValidationFailed","message":"The following policy rules failed: [\"ExpirationRule\",\"MfaRule\"]","innerError":{"request-id":"inner-id","date":"2026-03-02T09:00:00"}}}`)
	if e.Code != "RoleAssignmentRequestPolicyValidationFailed" || e.RequestID != "inner-id" ||
		strings.Join(e.FailedRules, ",") != "ExpirationRule,MfaRule" {
		t.Errorf("decoded %+v", e)
	}
	m := e.UserMessage()
	if !strings.Contains(m, "longer than the role allows") || !strings.Contains(m, "MFA") {
		t.Errorf("UserMessage = %q, want both rules explained", m)
	}
	// Not OData: keep the status text and the header's request id.
	e = graphErr(t, 502, "<html>bad gateway</html>")
	if e.Message != "Bad Gateway" || e.RequestID != "hdr-id" || e.Code != "" {
		t.Errorf("decoded %+v", e)
	}
}

func TestUserMessages(t *testing.T) {
	tests := []struct {
		status  int
		code    string
		message string
		want    string
	}{
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["JustificationRule"]`, "requires a justification"},
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["TicketingRule"]`, "ticket"},
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["MfaRule"]`, "sign in again with MFA"},
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["ExpirationRule"]`, "lower `grant`"},
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["EligibilityRule"]`, "not eligible"},
		{400, "RoleAssignmentRequestPolicyValidationFailed", `The following policy rules failed: ["ApprovalRule"]`, "ApprovalRule"},
		{400, "RoleAssignmentExists", "The Role assignment already exists.", "already active"},
		{400, "PendingRoleAssignmentRequest", "There is already an existing pending Role assignment request.", "already waiting"},
		{404, "RoleNotFound", "The role is not found.", "check the role name"},
		{400, "SubjectNotFound", "The subject is not found.", "approvals.principalId"},
		{400, "RoleAssignmentRequestAcrsValidationFailed", "acrs", "authentication context"},
		{429, "TooManyRequests", "Too many requests", "throttling"},
		{503, "ServiceUnavailable", "unavailable", "throttling"},
		{401, "InvalidAuthenticationToken", "Access token has expired.", "sign in again"},
		{403, "Authorization_RequestDenied", "Insufficient privileges", "RoleAssignmentSchedule.ReadWrite.Directory"},
		{400, "SomethingNew", "Graph's own words.", "Graph's own words."},
	}
	for _, tt := range tests {
		e := &GraphError{StatusCode: tt.status, Code: tt.code, Message: tt.message}
		if tt.code == "RoleAssignmentRequestPolicyValidationFailed" {
			e.FailedRules = ruleName.FindAllString(tt.message, -1)
		}
		if got := UserMessage(e); !strings.Contains(got, tt.want) {
			t.Errorf("%d %s: UserMessage = %q, want it to contain %q", tt.status, tt.code, got, tt.want)
		}
	}
}
