package pimtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/authn"
)

const (
	gateClientID = "0000aaaa-1111-4222-8333-444444444444"
	gateAppURI   = "api://mcp-gate"
	gateSecret   = "s3cret"
)

// The emulator's user tokens validate with the gate's validator, through
// the discovery document and key set it publishes; its refusals hold too.
func TestIssuerTokensValidate(t *testing.T) {
	e := startEmu(t, testScenario())
	v, err := authn.New(authn.Config{Authority: e.Authority(), TenantID: e.TenantID(), Audiences: []string{gateAppURI}, HTTPClient: e.hc, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Validate(context.Background(), e.UserToken(bob, gateAppURI, UserMFA(), UserACRS("c1"), UserScopes("mcp.tools")))
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if id.OID != bob || id.TenantID != e.TenantID() || !id.HasScope("mcp.tools") || strings.Join(id.AMR, ",") != "pwd,mfa" || strings.Join(id.ACRS, ",") != "c1" {
		t.Errorf("identity = %+v", id)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tok := range map[string]string{
		"expired":        e.UserToken(bob, gateAppURI, UserLifetime(-time.Hour)),
		"other audience": e.UserToken(bob, "api://other"),
		"other tenant":   e.UserToken(bob, gateAppURI, UserClaim("tid", "99999999-0000-4000-8000-000000000000")),
		"unsigned":       e.UserToken(bob, gateAppURI, Unsigned()),
		"forged":         e.UserToken(bob, gateAppURI, SignedBy(other)),
	} {
		var ae *authn.Error
		if _, err := v.Validate(context.Background(), tok); !errors.As(err, &ae) {
			t.Errorf("%s: Validate = %v, want an invalid token", name, err)
		}
	}
}

func (e *emu) obo(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := e.hc.PostForm(e.Authority()+"/"+e.TenantID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("token endpoint answered %s: %s", resp.Status, raw)
	}
	return resp.StatusCode, body
}

func oboForm(assertion string) url.Values {
	return url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "requested_token_use": {"on_behalf_of"},
		"client_id": {gateClientID}, "client_secret": {gateSecret}, "assertion": {assertion},
		"scope": {"https://graph.microsoft.com/.default"},
	}
}

// The on-behalf-of grant gives a Graph token that acts for the user whose
// token was exchanged, and for no one else.
func TestOnBehalfOf(t *testing.T) {
	e := startEmu(t, testScenario())
	e.RegisterApp(App{ClientID: gateClientID, Secret: gateSecret, IdentifierURI: gateAppURI})
	status, body := e.obo(t, oboForm(e.UserToken(bob, gateAppURI)))
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("exchange: %d %v", status, body)
	}
	graph := body["access_token"].(string)
	r := e.do(t, http.MethodPost, "/roleManagement/directory/roleAssignmentScheduleRequests", graph, activation(bob, readerID, "PT30M"))
	if r.status != http.StatusCreated || r.str(t, "principalId") != bob {
		t.Fatalf("bob's activation with the exchanged token: %d %s", r.status, r.raw)
	}
	r = e.do(t, http.MethodPost, "/roleManagement/directory/roleAssignmentScheduleRequests", graph, activation(alice, readerID, "PT30M"))
	if r.status < 400 {
		t.Fatalf("alice's activation with bob's exchanged token: %d %s", r.status, r.raw)
	}

	forAud := func(aud string) url.Values { return oboForm(e.UserToken(bob, aud)) }
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"by client id audience", forAud(gateClientID), http.StatusOK, ""},
		{"wrong secret", func() url.Values { f := forAud(gateAppURI); f.Set("client_secret", "nope"); return f }(), http.StatusUnauthorized, "invalid_client"},
		{"unknown app", func() url.Values { f := forAud(gateAppURI); f.Set("client_id", "x"); return f }(), http.StatusBadRequest, "unauthorized_client"},
		{"token for another app", forAud("api://other"), http.StatusBadRequest, "invalid_grant"},
		{"expired token", oboForm(e.UserToken(bob, gateAppURI, UserLifetime(-time.Minute))), http.StatusBadRequest, "invalid_grant"},
		{"unsigned token", oboForm(e.UserToken(bob, gateAppURI, Unsigned())), http.StatusBadRequest, "invalid_grant"},
		{"not on-behalf-of", func() url.Values { f := forAud(gateAppURI); f.Set("grant_type", "client_credentials"); return f }(), http.StatusBadRequest, "unsupported_grant_type"},
		{"not graph", func() url.Values {
			f := forAud(gateAppURI)
			f.Set("scope", "https://vault.azure.net/.default")
			return f
		}(), http.StatusBadRequest, "invalid_scope"},
	}
	for _, tt := range tests {
		status, body := e.obo(t, tt.form)
		if status != tt.status || (tt.code != "" && body["error"] != tt.code) {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, body, tt.status, tt.code)
		}
		if tt.code != "" && !strings.HasPrefix(body["error_description"].(string), "AADSTS") {
			t.Errorf("%s: error_description %q is not Entra's shape", tt.name, body["error_description"])
		}
	}
}

// A user who signed in with MFA keeps it through the exchange: the Graph
// token passes a role's MFA rule.
func TestOnBehalfOfKeepsMFA(t *testing.T) {
	e := startEmu(t, testScenario())
	e.RegisterApp(App{ClientID: gateClientID, Secret: gateSecret, IdentifierURI: gateAppURI})
	for _, mfa := range []bool{false, true} {
		var opts []UserTokenOption
		if mfa {
			opts = append(opts, UserMFA())
		}
		_, body := e.obo(t, oboForm(e.UserToken(alice, gateAppURI, opts...)))
		req := activation(alice, treasuryID, "PT30M")
		req["justification"] = "ticket work"
		req["ticketInfo"] = map[string]any{"ticketNumber": "T-1", "ticketSystem": "jira"}
		r := e.do(t, http.MethodPost, "/roleManagement/directory/roleAssignmentScheduleRequests", body["access_token"].(string), req)
		if ok := r.status == http.StatusCreated; ok != mfa {
			t.Errorf("mfa %v: activation answered %d %s", mfa, r.status, r.raw)
		}
	}
}
