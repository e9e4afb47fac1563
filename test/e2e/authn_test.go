package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

const (
	gateAudience = "api://mcp-gate-e2e"
	gateScope    = gateAudience + "/mcp.tools"
)

const (
	gateClientID = "0000aaaa-1111-4222-8333-444444444444"
	gateSecret   = "e2e-secret"
)

// authGate serves the demo tools with serve.auth: the emulator is the
// tenant's sign-in service. The gate's Graph credential is alice's, or with
// obo each caller's, through the on-behalf-of flow. flags go to serve.
func authGate(t *testing.T, e *pimEnv, approvals string, obo bool, flags ...string) (*Gate, string) {
	t.Helper()
	return authGateWith(t, e, approvals, "", obo, flags...)
}

// authGateWith is authGate with more top-level policy sections (extra).
func authGateWith(t *testing.T, e *pimEnv, approvals, extra string, obo bool, flags ...string) (*Gate, string) {
	t.Helper()
	policyFile, auditFile, env := e.authPolicy(t, approvals, extra, obo)
	args := append(append([]string{"--policy", policyFile}, flags...), "--", Upstream("db")[0], "--name", "db", "--demo")
	return ServeGate(t, env, args...), auditFile
}

// authPolicy writes authGateWith's policy, with an audit log of its own,
// and returns it with the environment the gate needs.
func (e *pimEnv) authPolicy(t *testing.T, approvals, extra string, obo bool) (policyFile, auditFile string, env []string) {
	t.Helper()
	policyFile, auditFile = e.gatedPolicy(t, gateOpts{principal: alice, approvals: approvals})
	text, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if obo {
		e.srv.RegisterApp(pimtest.App{ClientID: gateClientID, Secret: gateSecret, IdentifierURI: gateAudience})
		text = regexp.MustCompile(`credential: token\n  tokenFile: .*\n`).ReplaceAll(text, []byte("credential: onbehalfof\n  clientId: "+gateClientID+"\n"))
		env = []string{"AZURE_CLIENT_SECRET=" + gateSecret}
	}
	text = append(text, []byte("serve:\n  auth:\n    tenantId: "+e.srv.TenantID()+"\n    audience: "+gateAudience+
		"\n    authority: "+e.srv.Authority()+"\n    scope: "+gateScope+"\n    caFile: "+e.caFile+"\n"+extra)...)
	if err := os.WriteFile(policyFile, text, 0o600); err != nil {
		t.Fatal(err)
	}
	return policyFile, auditFile, env
}

// userClient is an initialized client that sends token with each request.
func (g *Gate) userClient(t *testing.T, token string, opts ...client.ClientOption) *client.Client {
	t.Helper()
	return g.ClientWith(t, []transport.StreamableHTTPCOption{transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token})}, opts...)
}

func (e *pimEnv) userToken(oid string, opts ...pimtest.UserTokenOption) string {
	return e.srv.UserToken(oid, gateAudience, append([]pimtest.UserTokenOption{pimtest.UserScopes("mcp.tools")}, opts...)...)
}

type httpAnswer struct {
	status int
	header http.Header
	body   string
}

func request(t *testing.T, method, url, token, sid, body string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{resp.StatusCode, resp.Header, string(b)}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`

// TestServeAuthRefusesBadTokens: with serve.auth, a request without a
// valid token for the gate is answered 401 with where to sign in, and the
// metadata names the tenant's authorization server and the scope.
func TestServeAuthRefusesBadTokens(t *testing.T) {
	e := startPIM(t)
	g, _ := authGate(t, e, "", false)
	base := strings.TrimSuffix(g.URL, "/mcp")
	metaURL := base + "/.well-known/oauth-protected-resource/mcp"
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, code string
		status            int
	}{
		{"no token", "", "", 401},
		{"expired", e.userToken(alice, pimtest.UserLifetime(-10*time.Minute)), "invalid_token", 401},
		{"wrong audience", e.srv.UserToken(alice, "api://another-app", pimtest.UserScopes("mcp.tools")), "invalid_token", 401},
		{"wrong tenant", e.userToken(alice, pimtest.UserClaim("tid", "99999999-0000-4000-8000-000000000000")), "invalid_token", 401},
		{"wrong issuer", e.userToken(alice, pimtest.UserClaim("iss", "https://login.microsoftonline.com/"+e.srv.TenantID()+"/v2.0")), "invalid_token", 401},
		{"unsigned", e.userToken(alice, pimtest.Unsigned()), "invalid_token", 401},
		{"wrongly signed", e.userToken(alice, pimtest.SignedBy(forger)), "invalid_token", 401},
		{"no oid", e.userToken(alice, pimtest.UserClaim("oid", nil)), "invalid_token", 401},
		{"the Graph token", e.srv.Token(alice), "invalid_token", 401},
		{"without the scope", e.srv.UserToken(alice, gateAudience, pimtest.UserScopes("other")), "insufficient_scope", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := request(t, http.MethodPost, g.URL, tt.token, "", initializeBody)
			h := a.header.Get("WWW-Authenticate")
			if a.status != tt.status || !strings.HasPrefix(h, `Bearer resource_metadata="`+metaURL+`"`) || !strings.Contains(h, `scope="`+gateScope+`"`) {
				t.Fatalf("%d, WWW-Authenticate %q; want %d naming %s", a.status, h, tt.status, metaURL)
			}
			if (tt.code == "") != !strings.Contains(h, `error=`) || !strings.Contains(h, tt.code) {
				t.Errorf("WWW-Authenticate %q, want error %q", h, tt.code)
			}
			if strings.Contains(a.body, "mcp-session") || a.header.Get("Mcp-Session-Id") != "" {
				t.Errorf("a refused request opened a session: %s", a.body)
			}
		})
	}

	// RFC 9728 §2 and §3: the document at the path-suffixed well-known URL
	// (and at the root) names the resource exactly as it is addressed.
	for _, u := range []string{metaURL, base + "/.well-known/oauth-protected-resource"} {
		a := request(t, http.MethodGet, u, "", "", "")
		var doc struct {
			Resource               string   `json:"resource"`
			AuthorizationServers   []string `json:"authorization_servers"`
			ScopesSupported        []string `json:"scopes_supported"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal([]byte(a.body), &doc); err != nil || a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %s", u, a.status, a.body)
		}
		if doc.Resource != g.URL || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != e.srv.Issuer() ||
			strings.Join(doc.ScopesSupported, " ") != gateScope || strings.Join(doc.BearerMethodsSupported, " ") != "header" {
			t.Errorf("%s: %+v", u, doc)
		}
	}
	// And a good token opens a session.
	if a := request(t, http.MethodPost, g.URL, e.userToken(alice), "", initializeBody); a.status != 200 || a.header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("a valid token: %d %s", a.status, a.body)
	}
}

// TestServeAuthPrincipalPerCall: each call acts for the token's user. With
// the gate's own (alice's) Graph credential, alice's call is activated and
// approved for her; bob's call is his, and does not run on alice's grant.
// Bob cannot post to, listen on or delete alice's session.
func TestServeAuthPrincipalPerCall(t *testing.T) {
	e := startPIM(t)
	g, _ := authGate(t, e, "  wait: 30s\n", false)
	ac := g.userClient(t, e.userToken(alice))
	done := make(chan error, 1)
	go func() {
		res, err := TryCall(t.Context(), ac, "delete_database", map[string]any{"name": "x"})
		if err == nil && res.IsError {
			err = errors.New(Text(t, res))
		}
		done <- err
	}()
	req := e.pendingRequest(t, alice)
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	if err := Receive(t, "alice's approved call", done); err != nil {
		t.Fatalf("alice's call: %v", err)
	}

	bc := g.userClient(t, e.userToken(bob))
	res := Call(t, bc, "delete_database", map[string]any{"name": "x"})
	if !res.IsError {
		t.Fatalf("bob's call ran on alice's grant: %s", Text(t, res))
	}
	if got := upstreamRan(t, ac, "delete_database"); got != "1" {
		t.Fatalf("delete_database ran %s times, want once (alice's)", got)
	}
	for _, r := range e.srv.Requests() {
		if r.Principal != alice {
			t.Errorf("a PIM request for %s was made with alice's credential: %+v", r.Principal, r)
		}
	}

	// Alice's session, presented with bob's token.
	opened := request(t, http.MethodPost, g.URL, e.userToken(alice), "", initializeBody)
	sid := opened.header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d %s", opened.status, opened.body)
	}
	bobTok := e.userToken(bob)
	for _, m := range []struct{ method, body string }{
		{http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"calls","arguments":{"tool":"x"}}}`},
		{http.MethodGet, ""},
		{http.MethodDelete, ""},
	} {
		a := request(t, m.method, g.URL, bobTok, sid, m.body)
		if a.status != http.StatusForbidden || !strings.Contains(a.body, "another user") {
			t.Errorf("bob %s on alice's session: %d %s", m.method, a.status, a.body)
		}
	}
	if a := request(t, http.MethodDelete, g.URL, e.userToken(alice), sid, ""); a.status != http.StatusOK {
		t.Errorf("alice deletes her session: %d %s", a.status, a.body)
	}
}

// TestServeAuthOnBehalfOf: with credential: onbehalfof each user's call is
// activated with a Graph token for that user: alice and bob each get their
// own PIM request and grant, the audit names each, and carol (eligible for
// nothing) is refused rather than run on either grant.
func TestServeAuthOnBehalfOf(t *testing.T) {
	e := startPIM(t)
	g, auditFile := authGate(t, e, "  wait: 60s\n", true)
	users := map[string]*client.Client{alice: g.userClient(t, e.userToken(alice)), bob: g.userClient(t, e.userToken(bob))}
	done := make(chan error, len(users))
	for oid, c := range users {
		go func() {
			res, err := TryCall(t.Context(), c, "delete_database", map[string]any{"name": oid})
			if err == nil && res.IsError {
				err = errors.New(Text(t, res))
			}
			done <- err
		}()
	}
	for oid := range users {
		if err := e.srv.Approve(e.pendingRequest(t, oid).ID); err != nil {
			t.Fatal(err)
		}
	}
	for range users {
		if err := Receive(t, "an approved call", done); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	reqs := e.srv.Requests()
	if len(reqs) != 2 || reqs[0].Principal == reqs[1].Principal {
		t.Fatalf("PIM requests %+v, want one for alice and one for bob", reqs)
	}
	// Each user's grant is theirs: a second call of each runs without a
	// new request; carol runs on neither.
	for oid, c := range users {
		if res := Call(t, c, "delete_database", map[string]any{"name": oid}); res.IsError {
			t.Fatalf("%s's second call: %s", oid, Text(t, res))
		}
	}
	cc := g.userClient(t, e.userToken(carol))
	if res := Call(t, cc, "delete_database", map[string]any{"name": "carol"}); !res.IsError {
		t.Fatalf("carol's call ran: %s", Text(t, res))
	}
	if got := upstreamRan(t, users[alice], "delete_database"); got != "4" {
		t.Fatalf("delete_database ran %s times, want 4 (two each for alice and bob)", got)
	}
	if n := e.srv.CreateCount(); n != 2 {
		t.Fatalf("%d PIM requests created, want 2", n)
	}
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct {
			Principal, Tool, Outcome string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Tool == "delete_database" && rec.Outcome == "admitted" {
			seen[rec.Principal]++
		}
	}
	if seen[alice] != 2 || seen[bob] != 2 || len(seen) != 2 {
		t.Fatalf("admitted records by principal %v, want two each for alice and bob", seen)
	}
}

// TestServeAuthNotificationsStayWithTheirUser: over Streamable HTTP with
// serve.auth, the log message and the progress notifications of alice's
// call reach alice, and never bob, though bob listens on his event stream
// at the most verbose log level. A tools/list_changed, which is for every
// session, marks the point by which anything sent to bob's stream before
// it has arrived.
func TestServeAuthNotificationsStayWithTheirUser(t *testing.T) {
	e := startPIM(t)
	policyFile, _, env := e.authPolicy(t, "", "", false)
	text, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), "  \"*\": deny\n", "  log: allow\n  progress: allow\n  add_tool: allow\n  \"*\": deny\n", 1))
	if err := os.WriteFile(policyFile, text, 0o600); err != nil {
		t.Fatal(err)
	}
	g := ServeGate(t, env, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")
	listen := func(token string) (*client.Client, func() []mcp.JSONRPCNotification) {
		//lint:ignore SA1019 a 2025-11-25 client hears notifications outside its calls on the GET stream
		c := g.ClientWith(t, []transport.StreamableHTTPCOption{transport.WithContinuousListening(),
			transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token})}, Protocols[0].Opts...)
		var mu sync.Mutex
		var got []mcp.JSONRPCNotification
		c.OnNotification(func(n mcp.JSONRPCNotification) {
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		})
		//lint:ignore SA1019 2025-11-25 sessions still set their log level; the test needs bob's at its most verbose
		if err := c.SetLevel(t.Context(), mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: mcp.LoggingLevelDebug}}); err != nil {
			t.Fatalf("logging/setLevel: %v", err)
		}
		return c, func() []mcp.JSONRPCNotification {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}
	}
	ac, aliceHeard := listen(e.userToken(alice))
	_, bobHeard := listen(e.userToken(bob))

	const secret = "alice-only-7f3a"
	// mcp-go's Streamable HTTP server can lose a notification sent the
	// instant before its call's result (mark3labs/mcp-go#969), so each
	// tool waits after its last one: the test counts what alice hears.
	Call(t, ac, "log", map[string]any{"message": secret, "level": "error", "delay_ms": 300})
	if _, err := callWithProgress(t.Context(), ac, "progress", map[string]any{"steps": 3, "delay_ms": 300}); err != nil {
		t.Fatal(err)
	}
	fromAlice := func(n mcp.JSONRPCNotification) bool {
		return n.Method == string(mcp.MethodNotificationProgress) ||
			n.Method == string(mcp.MethodNotificationMessage) && strings.Contains(fmt.Sprint(n.Params.AdditionalFields["data"]), secret)
	}
	Eventually(t, "alice hears her log and her progress", func() error {
		var logs, progress int
		for _, n := range aliceHeard() {
			switch {
			case n.Method == string(mcp.MethodNotificationProgress):
				progress++
			case fromAlice(n):
				logs++
			}
		}
		if logs != 1 || progress != 3 {
			return fmt.Errorf("alice heard %d logs and %d progress notifications, want 1 and 3", logs, progress)
		}
		return nil
	})

	before := len(bobHeard())
	Call(t, ac, "add_tool", map[string]any{"name": "fresh"})
	Eventually(t, "bob hears tools/list_changed", func() error {
		for _, n := range bobHeard()[before:] {
			if n.Method == string(mcp.MethodNotificationToolsListChanged) {
				return nil
			}
		}
		return errors.New("not yet")
	})
	for _, n := range bobHeard() {
		if fromAlice(n) {
			t.Errorf("bob heard alice's %s: %v", n.Method, n.Params.AdditionalFields)
		}
	}
}
