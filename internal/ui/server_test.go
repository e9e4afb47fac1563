package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/authn"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

const (
	audience  = "api://mcp-gate-ui"
	scope     = audience + "/mcp.tools"
	adminRole = "mcp-gate.admin"
)

func get(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGuardRefusesForeignOriginAndHost: a page on loopback answers only
// requests under a loopback name, and no other site's page.
func TestGuardRefusesForeignOriginAndHost(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(NewServer(ServerConfig{Board: f.board}))
	t.Cleanup(srv.Close)
	self := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := strings.Cut(self, ":")
	tests := []struct {
		name   string
		header map[string]string
		want   int
		body   string
	}{
		{"plain", nil, http.StatusOK, "Waiting for approval"},
		{"same origin", map[string]string{"Origin": srv.URL}, http.StatusOK, "Waiting for approval"},
		{"localhost name", map[string]string{"Host": "localhost:" + port}, http.StatusOK, "Waiting for approval"},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "cross-origin"},
		{"other loopback port's origin", map[string]string{"Origin": "http://127.0.0.1:1"}, http.StatusForbidden, "cross-origin"},
		{"null origin", map[string]string{"Origin": "null"}, http.StatusForbidden, "cross-origin"},
		{"rebound host", map[string]string{"Host": "evil.example:" + port}, http.StatusForbidden, "invalid Host"},
		{"rebound host, its own origin", map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}, http.StatusForbidden, "invalid Host"},
	}
	for _, tt := range tests {
		for _, path := range []string{PagePath, APIPath + "decided", EventsPath} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				if path == EventsPath && tt.want == http.StatusOK {
					return // a stream: TestEventsStream reads it
				}
				status, body := get(t, srv.URL+path, tt.header)
				if status != tt.want || path == PagePath && !strings.Contains(body, tt.body) {
					t.Fatalf("status %d %q, want %d with %q", status, body, tt.want, tt.body)
				}
			})
		}
	}
}

// authServer serves f's board behind tokens of the emulator's issuer.
func authServer(t *testing.T, f *fixture) (*pimtest.Server, *httptest.Server) {
	t.Helper()
	pt, err := pimtest.NewServer(pimtest.Scenario{Users: []pimtest.User{{ID: alice, Name: "alice"}, {ID: bob, Name: "bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pt.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pt.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := authn.New(authn.Config{Authority: pt.Authority(), TenantID: pt.TenantID(), Audiences: []string{audience}, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(ServerConfig{Board: f.board, Validator: v, Scope: scope, AdminRole: adminRole}))
	t.Cleanup(srv.Close)
	return pt, srv
}

// TestAuthShowsOwnItems: with serve.auth, the page and its JSON need a
// valid token, and show a user only their own items unless the token
// carries the admin role.
func TestAuthShowsOwnItems(t *testing.T) {
	f := newFixture(t)
	for _, who := range []string{alice, bob} {
		k := grants.Key{Principal: who, Kind: "role", RoleID: "r1", Scope: "/"}
		p := newPIM()
		f.board.Waiting(k, call(who, "w-"+who, "delete_database"), f.cache.Join(k, p.activate))
		p.report <- grants.Progress{RequestID: "req-" + who, Status: "PendingApproval"}
		r := call(who, "d-"+who, "send_payment")
		r.Outcome = audit.OutcomeRefused
		if err := f.audit.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	until(t, f.board, "both requests", func(st State) bool {
		return len(st.Waiting) == 2 && st.Waiting[0].RequestID != "" && st.Waiting[1].RequestID != ""
	})
	pt, srv := authServer(t, f)
	token := func(oid string, opts ...pimtest.UserTokenOption) map[string]string {
		tok := pt.UserToken(oid, audience, append([]pimtest.UserTokenOption{pimtest.UserScopes("mcp.tools")}, opts...)...)
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	tests := []struct {
		name   string
		header map[string]string
		status int
		see    []string // request ids (waiting) and trace ids (decided) shown
		notSee []string
	}{
		{"no token", nil, http.StatusUnauthorized, nil, nil},
		{"not a token", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, nil, nil},
		{"other audience", map[string]string{"Authorization": "Bearer " + pt.UserToken(alice, "api://other", pimtest.UserScopes("mcp.tools"))}, http.StatusUnauthorized, nil, nil},
		{"without the scope", map[string]string{"Authorization": "Bearer " + pt.UserToken(alice, audience)}, http.StatusForbidden, nil, nil},
		{"alice", token(alice), http.StatusOK, []string{"req-" + alice, "d-" + alice}, []string{"req-" + bob, "d-" + bob}},
		{"bob", token(bob), http.StatusOK, []string{"req-" + bob, "d-" + bob}, []string{"req-" + alice, "d-" + alice}},
		{"alice with another app role", token(alice, pimtest.UserClaim("roles", []string{"reader"})), http.StatusOK, []string{"req-" + alice}, []string{"req-" + bob}},
		{"admin", token(alice, pimtest.UserClaim("roles", []string{adminRole})), http.StatusOK, []string{"req-" + alice, "req-" + bob, "d-" + alice, "d-" + bob}, nil},
	}
	for _, tt := range tests {
		for _, path := range []string{PagePath, APIPath + "waiting", APIPath + "decided"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				status, body := get(t, srv.URL+path, tt.header)
				if status != tt.status {
					t.Fatalf("status %d %q, want %d", status, body, tt.status)
				}
				for _, id := range tt.notSee {
					if strings.Contains(body, id) {
						t.Errorf("shows %s:\n%s", id, body)
					}
				}
				for _, id := range tt.see {
					if path == APIPath+"waiting" && strings.HasPrefix(id, "d-") || path == APIPath+"decided" && strings.HasPrefix(id, "req-") {
						continue
					}
					if !strings.Contains(body, id) {
						t.Errorf("does not show %s:\n%s", id, body)
					}
				}
			})
		}
	}
}

// TestEventsStream: the stream sends the state, as filtered, at once and
// again after changes; a stream past the bound is refused.
func TestEventsStream(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(NewServer(ServerConfig{Board: f.board, MaxStreams: 1}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+EventsPath+"?tool=read_table", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan event, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev event
				if json.Unmarshal([]byte(data), &ev) == nil {
					events <- ev
				}
			}
		}
		close(events)
	}()
	next := func() event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return event{}
	}
	if ev := next(); len(ev.Decided) != 0 || !strings.Contains(ev.HTML.Decided, "No decision yet") {
		t.Fatalf("first event = %+v", ev)
	}
	if status, _ := get(t, srv.URL+EventsPath, nil); status != http.StatusServiceUnavailable {
		t.Fatalf("a second stream over the bound: status %d, want 503", status)
	}
	for _, tool := range []string{"crash", "read_table"} {
		if err := f.audit.Write(ctx, audit.Record{TraceID: "t-" + tool, Tool: tool, Decision: audit.DecisionAllow, Outcome: audit.OutcomeAdmitted}); err != nil {
			t.Fatal(err)
		}
	}
	// Each change sends the state as filtered: the stream may coalesce changes.
	for {
		ev := next()
		if len(ev.Decided) == 1 && ev.Decided[0].Tool == "read_table" {
			if !strings.Contains(ev.HTML.Decided, "t-read_table") || strings.Contains(ev.HTML.Decided, "t-crash") {
				t.Fatalf("html = %s", ev.HTML.Decided)
			}
			break
		}
		if len(ev.Decided) != 0 {
			t.Fatalf("the filter let through %+v", ev.Decided)
		}
	}
}
