package authn

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

const bobOID = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"

// guarded is a Guard in front of a stand-in MCP endpoint that opens a
// session on a request without one and reports who it served.
func guarded(t *testing.T, scope string, maxSessions ...int) (*issuer, *httptest.Server) {
	t.Helper()
	n := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityFrom(r.Context())
		tok, _ := TokenFrom(r.Context())
		if r.Header.Get(sessionHeader) == "" {
			n++
			w.Header().Set(sessionHeader, "s"+string(rune('0'+n)))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"oid": id.OID, "authz": r.Header.Get("Authorization"), "hasToken": tok != ""})
	})
	return guarding(t, next, scope, maxSessions...)
}

// guarding is a Guard in front of next.
func guarding(t *testing.T, next http.Handler, scope string, maxSessions ...int) (*issuer, *httptest.Server) {
	t.Helper()
	iss := newIssuer(t)
	cfg := GuardConfig{Validator: iss.validator(t, clock.NewFake(t0)), Endpoint: "/mcp", Scope: scope}
	if len(maxSessions) > 0 {
		cfg.MaxSessions = maxSessions[0]
	}
	srv := httptest.NewServer(NewGuard(cfg).Wrap(next))
	t.Cleanup(srv.Close)
	return iss, srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, method, url, authz, sid string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if sid != "" {
		req.Header.Set(sessionHeader, sid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestGuard(t *testing.T) {
	iss, srv := guarded(t, "api://mcp-gate/mcp.call")
	k := testKey(t, 0)
	good := sign(t, iss.goodClaims(), "k1", k)
	noScope := iss.goodClaims()
	noScope["scp"] = "other"
	expired := iss.goodClaims()
	expired["exp"] = t0.Add(-time.Hour).Unix()
	meta := srv.URL + MetadataPath + "/mcp"
	tests := []struct {
		name, method, path, authz string
		status                    int
		challenge                 []string // parts of WWW-Authenticate
		body                      string
	}{
		{"no token", "POST", "/mcp", "", 401, []string{`Bearer resource_metadata="` + meta + `"`, `scope="api://mcp-gate/mcp.call"`}, "no bearer token"},
		{"not bearer", "POST", "/mcp", "Basic " + good, 401, []string{`resource_metadata="` + meta + `"`}, "no bearer token"},
		{"expired", "POST", "/mcp", "Bearer " + sign(t, expired, "k1", k), 401, []string{`error="invalid_token"`, `error_description="invalid token: the token has expired"`, `resource_metadata="` + meta + `"`}, "expired"},
		{"garbage", "GET", "/mcp", "Bearer x.y.z", 401, []string{`error="invalid_token"`}, "not a signed JWT"},
		{"missing scope", "POST", "/mcp", "Bearer " + sign(t, noScope, "k1", k), 403, []string{`error="insufficient_scope"`, `scope="api://mcp-gate/mcp.call"`}, "does not grant the scope"},
		{"valid", "POST", "/mcp", "Bearer " + good, 200, nil, `"oid":"` + userOID + `"`},
		{"scheme in lower case", "POST", "/mcp", "bearer " + good, 200, nil, `"authz":""`},
		{"legacy SSE is off", "GET", "/sse", "Bearer " + good, 404, nil, "Streamable HTTP at /mcp only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, tt.method, srv.URL+tt.path, tt.authz, "")
			if a.status != tt.status || !strings.Contains(a.body, tt.body) {
				t.Fatalf("%d %q, want %d containing %q", a.status, a.body, tt.status, tt.body)
			}
			for _, c := range tt.challenge {
				if h := a.header.Get("WWW-Authenticate"); !strings.Contains(h, c) {
					t.Errorf("WWW-Authenticate %q lacks %q", h, c)
				}
			}
		})
	}
	// What the endpoint saw of a valid request: the caller, and no token.
	a := send(t, "POST", srv.URL+"/mcp", "Bearer "+good, "")
	if !strings.Contains(a.body, `"authz":""`) || !strings.Contains(a.body, `"hasToken":true`) {
		t.Errorf("endpoint saw %s, want no Authorization header and the token in the context", a.body)
	}
}

func TestGuardMetadata(t *testing.T) {
	iss, srv := guarded(t, "api://mcp-gate/mcp.call")
	for _, path := range []string{MetadataPath, MetadataPath + "/mcp"} {
		a := send(t, "GET", srv.URL+path, "", "")
		var doc map[string]any
		if err := json.Unmarshal([]byte(a.body), &doc); err != nil || a.status != 200 {
			t.Fatalf("%s: %d %s", path, a.status, a.body)
		}
		want := map[string]any{
			"resource":                 srv.URL + "/mcp",
			"authorization_servers":    []any{iss.srv.URL + "/" + tenant + "/v2.0"},
			"scopes_supported":         []any{"api://mcp-gate/mcp.call"},
			"bearer_methods_supported": []any{"header"},
		}
		for k, v := range want {
			if got, _ := json.Marshal(doc[k]); string(got) != mustJSON(v) {
				t.Errorf("%s: %s = %s, want %s", path, k, got, mustJSON(v))
			}
		}
	}
	if a := send(t, "POST", srv.URL+MetadataPath, "", ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST metadata: %d", a.status)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// A session belongs to the principal who opened it: another principal's
// token cannot post to it, listen on it or delete it.
func TestGuardSessions(t *testing.T) {
	iss, srv := guarded(t, "")
	k := testKey(t, 0)
	alice := "Bearer " + sign(t, iss.goodClaims(), "k1", k)
	bc := iss.goodClaims()
	bc["oid"] = bobOID
	bob := "Bearer " + sign(t, bc, "k1", k)

	opened := send(t, "POST", srv.URL+"/mcp", alice, "")
	sid := opened.header.Get(sessionHeader)
	if sid == "" {
		t.Fatal("no session opened")
	}
	for _, m := range []string{"POST", "GET", "DELETE"} {
		if a := send(t, m, srv.URL+"/mcp", bob, sid); a.status != http.StatusForbidden || !strings.Contains(a.body, "another user") {
			t.Errorf("bob %s on alice's session: %d %s", m, a.status, a.body)
		}
	}
	if a := send(t, "POST", srv.URL+"/mcp", alice, sid); a.status != 200 {
		t.Errorf("alice on her session: %d %s", a.status, a.body)
	}
	if a := send(t, "POST", srv.URL+"/mcp", bob, "made-up"); a.status != http.StatusNotFound {
		t.Errorf("unknown session: %d %s", a.status, a.body)
	}
	if a := send(t, "DELETE", srv.URL+"/mcp", alice, sid); a.status != 200 {
		t.Fatalf("alice deletes her session: %d", a.status)
	}
	if a := send(t, "POST", srv.URL+"/mcp", alice, sid); a.status != http.StatusNotFound {
		t.Errorf("deleted session: %d %s", a.status, a.body)
	}
}

// Owners are remembered for a bounded number of sessions; a session whose
// owner was forgotten is refused, not admitted to anyone.
func TestGuardSessionBound(t *testing.T) {
	iss, srv := guarded(t, "", 2)
	alice := "Bearer " + sign(t, iss.goodClaims(), "k1", testKey(t, 0))
	var sids []string
	for range 3 {
		sids = append(sids, send(t, "POST", srv.URL+"/mcp", alice, "").header.Get(sessionHeader))
	}
	if a := send(t, "POST", srv.URL+"/mcp", alice, sids[0]); a.status != http.StatusNotFound {
		t.Errorf("the least recent session past the bound: %d %s", a.status, a.body)
	}
	for _, sid := range sids[1:] {
		if a := send(t, "POST", srv.URL+"/mcp", alice, sid); a.status != 200 {
			t.Errorf("session %s within the bound: %d %s", sid, a.status, a.body)
		}
	}
}
