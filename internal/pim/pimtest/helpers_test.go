package pimtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

const (
	alice = "11111111-1111-4111-8111-111111111111"
	bob   = "22222222-2222-4222-8222-222222222222"
	carol = "33333333-3333-4333-8333-333333333333" // eligible for nothing

	readerID   = "aaaaaaaa-0000-4000-8000-000000000001" // no approval, max 1h
	dbaID      = "aaaaaaaa-0000-4000-8000-000000000002" // manual approval
	treasuryID = "aaaaaaaa-0000-4000-8000-000000000003" // justification, ticket, MFA
	autoOKID   = "aaaaaaaa-0000-4000-8000-000000000004" // approved 5m after the request
	autoNoID   = "aaaaaaaa-0000-4000-8000-000000000005" // denied 5m after the request
)

var epoch = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

func testScenario() Scenario {
	return Scenario{
		Users: []User{{ID: alice, Name: "alice"}, {ID: bob, Name: "bob"}, {ID: carol, Name: "carol"}},
		Roles: []Role{
			{ID: readerID, DisplayName: "Reader", MaxDuration: time.Hour},
			{ID: dbaID, DisplayName: "Database Administrator", RequiresApproval: true},
			{ID: treasuryID, DisplayName: "Treasury", RequiresJustification: true, RequiresTicket: true, RequiresMFA: true},
			{ID: autoOKID, DisplayName: "Auto Approved", RequiresApproval: true, Approver: &Approver{Mode: ApproveAuto, After: 5 * time.Minute}},
			{ID: autoNoID, DisplayName: "Auto Denied", RequiresApproval: true, Approver: &Approver{Mode: DenyAuto, After: 5 * time.Minute}},
			{DisplayName: "Ops O'Brien"}, // id derived from the name
		},
		Eligibilities: []Eligibility{
			{Principal: alice, Role: "Reader"}, {Principal: alice, Role: dbaID}, {Principal: alice, Role: "Treasury"},
			{Principal: alice, Role: "Auto Approved"}, {Principal: alice, Role: "Auto Denied"},
			{Principal: bob, Role: "Reader"}, {Principal: bob, Role: "Database Administrator"},
		},
		Approver: Approver{Mode: ApproveManual},
	}
}

// emu is a started emulator on a fake clock with an HTTPS client that
// trusts its CA.
type emu struct {
	*Server
	clock *clock.Fake
	hc    *http.Client
}

func startEmu(t *testing.T, sc Scenario, opts ...Option) *emu {
	t.Helper()
	fc := clock.NewFake(epoch)
	s, err := NewServer(sc, append([]Option{WithClock(fc)}, opts...)...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	tr := &http.Transport{ForceAttemptHTTP2: true}
	if pem := s.CACertPEM(); pem != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("CACertPEM is not a PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &emu{Server: s, clock: fc, hc: &http.Client{Transport: tr}}
}

// reply is a response with its body decoded generically, so tests check
// the wire names rather than round-tripping through the emulator's structs.
type reply struct {
	status int
	proto  string // "h2" or "http1"
	header http.Header
	raw    []byte
	body   map[string]any
}

func (e *emu) do(t *testing.T, method, path, token string, body any) reply {
	t.Helper()
	r, err := e.send(t, e.hc, method, path, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is do without failing on a transport error, for dropped connections.
func (e *emu) send(t *testing.T, hc *http.Client, method, path, token string, body any) (reply, error) {
	t.Helper()
	u := path
	if len(path) > 0 && path[0] == '/' {
		u = e.URL() + path
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, proto: "http1", header: resp.Header, raw: raw}
	if resp.ProtoMajor == 2 {
		r.proto = "h2"
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return r, nil
}

func (r reply) str(t *testing.T, path ...string) string {
	t.Helper()
	v := r.get(t, path...)
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v = %#v, want a string; body %s", path, v, r.raw)
	}
	return s
}

func (r reply) get(t *testing.T, path ...string) any {
	t.Helper()
	var v any = r.body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: %q is not inside an object; body %s", path, p, r.raw)
		}
		if v, ok = m[p]; !ok {
			t.Fatalf("%v: no %q; body %s", path, p, r.raw)
		}
	}
	return v
}

func (r reply) values(t *testing.T) []map[string]any {
	t.Helper()
	vs, ok := r.get(t, "value").([]any)
	if !ok {
		t.Fatalf("value is not an array: %s", r.raw)
	}
	out := make([]map[string]any, len(vs))
	for i, v := range vs {
		if out[i], ok = v.(map[string]any); !ok {
			t.Fatalf("value[%d] is not an object: %s", i, r.raw)
		}
	}
	return out
}

// wantError checks an OData error reply.
func (r reply) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if got := r.str(t, "error", "code"); got != code {
		t.Fatalf("error.code = %q, want %q; body %s", got, code, r.raw)
	}
	if r.str(t, "error", "message") == "" {
		t.Fatalf("error.message is empty: %s", r.raw)
	}
	if id := r.str(t, "error", "innerError", "request-id"); !isGUID(id) || r.header.Get("request-id") != id {
		t.Fatalf("innerError.request-id = %q, header request-id = %q; want the same GUID", id, r.header.Get("request-id"))
	}
	if _, err := time.Parse("2006-01-02T15:04:05", r.str(t, "error", "innerError", "date")); err != nil {
		t.Fatalf("innerError.date: %v", err)
	}
}

const requestsPath = "/roleManagement/directory/roleAssignmentScheduleRequests"

func activation(principal, role, duration string) map[string]any {
	return map[string]any{
		"action":           "selfActivate",
		"principalId":      principal,
		"roleDefinitionId": role,
		"directoryScopeId": "/",
		"justification":    "tests",
		"scheduleInfo": map[string]any{
			"startDateTime": epoch.Format(time.RFC3339),
			"expiration":    map[string]any{"type": "afterDuration", "duration": duration},
		},
		"ticketInfo": map[string]any{"ticketNumber": "CHG-1", "ticketSystem": "ServiceNow"},
	}
}
