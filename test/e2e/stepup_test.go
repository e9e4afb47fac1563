package e2e

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// TestServeAuthStepUp: with on-behalf-of activation, a role that needs MFA
// or an authentication context the caller's sign-in does not show is a
// step-up for the caller's own client: the call is answered 401 with an
// Entra claims challenge (error="insufficient_claims", the claims in
// base64) and its JSON-RPC refusal, and nothing is forwarded; once the
// client presents a token that meets the claims, the same session's call
// is activated and runs.
func TestServeAuthStepUp(t *testing.T) {
	e := credsEnv(t)
	policyFile, _, env := e.authPolicy(t, "", "", true)
	text, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.NewReplacer("  read_table: allow\n", "  read_table: {role: "+ctxRole+"}\n",
		"  send_payment: {role: "+treasury+"}\n", "  send_payment: {role: "+mfaRole+"}\n").Replace(string(text)))
	if err := os.WriteFile(policyFile, text, 0o600); err != nil {
		t.Fatal(err)
	}
	g := ServeGate(t, env, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")

	plain := e.userToken(alice)
	opened := request(t, "POST", g.URL, plain, "", initializeBody)
	sid := opened.header.Get("Mcp-Session-Id")
	if opened.status != 200 || sid == "" {
		t.Fatalf("initialize: %d %s", opened.status, opened.body)
	}
	request(t, "POST", g.URL, plain, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	call := func(token, tool string) httpAnswer {
		return request(t, "POST", g.URL, token, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"`+tool+`","arguments":{"name":"t","amount":1,"to":"x"}}}`)
	}
	tests := []struct {
		name, token, tool, claims string
	}{
		{"MFA not in the sign-in", plain, "send_payment", `{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}`},
		{"authentication context not in the sign-in", e.userToken(alice, pimtest.UserMFA()), "read_table", `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(tt.token, tt.tool)
			h := a.header.Get("WWW-Authenticate")
			if a.status != 401 || !strings.Contains(h, `error="insufficient_claims"`) ||
				!strings.Contains(h, `claims="`+base64.StdEncoding.EncodeToString([]byte(tt.claims))+`"`) || !strings.Contains(h, `resource_metadata="`) {
				t.Fatalf("%d, WWW-Authenticate %q, want 401 with the claims challenge %s", a.status, h, tt.claims)
			}
			if !strings.Contains(a.body, `"isError":true`) || !strings.Contains(a.body, "sign in to your MCP client again") {
				t.Errorf("the call's answer %s, want its refusal saying what to do", a.body)
			}
		})
	}
	if a := call(e.userToken(alice, pimtest.UserMFA(), pimtest.UserACRS("c1")), "read_table"); a.status != 200 || strings.Contains(a.body, `"isError":true`) {
		t.Fatalf("with the claims met: %d %s, want the call run", a.status, a.body)
	}
	c := g.userClient(t, e.userToken(alice))
	if got := upstreamRan(t, c, "read_table"); got != "1" {
		t.Errorf("read_table ran %s times, want once (after the step-up)", got)
	}
	if got := upstreamRan(t, c, "send_payment"); got != "0" {
		t.Errorf("send_payment ran %s times, want never", got)
	}
}
