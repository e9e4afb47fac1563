package pim_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

const (
	ctxRoleID   = "71111111-2222-4333-8444-555555555555"
	mfaClaims   = `{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}`
	acrsClaims  = `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	emuTenantID = "72f988bf-0000-4000-8000-000000000001" // the emulator's default tid
)

func stepUpScenario() pimtest.Scenario {
	sc := scenario()
	sc.Roles = append(sc.Roles, pimtest.Role{ID: ctxRoleID, DisplayName: "Context Role", AuthContext: "c1"})
	sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: alice, Role: ctxRoleID})
	return sc
}

// stepUpSource is a fake token source for an interactive credential: a
// plain sign-in gives a token without MFA or authentication context; a
// request with claims (and cp1 declared) gives one that meets them, as
// Entra would after the user signs in again.
type stepUpSource struct {
	srv          *pimtest.Server
	ignoreClaims bool  // Entra issued a token that still lacks the claims
	fail         error // signing in again fails (or waits for the user)

	mu     sync.Mutex
	claims []string // the claims of each request that had some
}

func (s *stepUpSource) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	var opts []pimtest.TokenOption
	if o.Claims != "" {
		s.mu.Lock()
		s.claims = append(s.claims, o.Claims)
		s.mu.Unlock()
		if !o.EnableCAE {
			return azcore.AccessToken{}, errors.New("claims requested without declaring cp1 (EnableCAE)")
		}
		if s.fail != nil {
			return azcore.AccessToken{}, s.fail
		}
		if !s.ignoreClaims && strings.Contains(o.Claims, `"mfa"`) {
			opts = append(opts, pimtest.WithMFA())
		}
		if !s.ignoreClaims && strings.Contains(o.Claims, `"value":"c1"`) {
			opts = append(opts, pimtest.WithACRS("c1"))
		}
	}
	return azcore.AccessToken{Token: s.srv.Token(alice, opts...), ExpiresOn: time.Now()}, nil
}

func (s *stepUpSource) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.claims...)
}

// The interactive credentials meet an MFA or authentication-context
// refusal by asking for a token with the claims and posting once more;
// the others are told exactly what to do.
func TestStepUp(t *testing.T) {
	tests := []struct {
		name, kind, role string
		src              *stepUpSource
		wantClaims       string   // asked of the token source
		wantErr          []string // in the user message; none: granted
	}{
		{name: "browser meets MFA", kind: "browser", role: "MFA Role", wantClaims: mfaClaims},
		{name: "devicecode meets an authentication context", kind: "devicecode", role: "Context Role", wantClaims: acrsClaims},
		{name: "token still lacks MFA", kind: "browser", role: "MFA Role", src: &stepUpSource{ignoreClaims: true}, wantClaims: mfaClaims,
			wantErr: []string{"multi-factor authentication", "still does not show"}},
		{name: "signing in again needs the user", kind: "devicecode", role: "Context Role", wantClaims: acrsClaims,
			src:     &stepUpSource{fail: &pim.SignInError{Kind: "devicecode", Prompt: "To sign in, enter the code XYZ987 at https://microsoft.com/devicelogin."}},
			wantErr: []string{`authentication context "c1"`, "XYZ987"}},
		{name: "azurecli gets the az login command", kind: "azurecli", role: "MFA Role",
			wantErr: []string{"az login --tenant " + emuTenantID + " --claims-challenge " + base64.StdEncoding.EncodeToString([]byte(mfaClaims))}},
		{name: "azurecli, authentication context", kind: "azurecli", role: "Context Role",
			wantErr: []string{"--claims-challenge " + base64.StdEncoding.EncodeToString([]byte(acrsClaims))}},
		{name: "token says what to change", kind: "token", role: "Context Role",
			wantErr: []string{`authentication context "c1"`, "credential token cannot", "browser or devicecode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, stepUpScenario())
			src := tt.src
			if src == nil {
				src = &stepUpSource{}
			}
			src.srv = e.srv
			c := e.client(t, alice, func(c *pim.Config) { c.Credential, c.CredentialKind = src, tt.kind })
			g, err := e.activate(c, context.Background(), req(tt.role), nil)
			asked := src.asked()
			switch {
			case tt.wantClaims == "" && len(asked) != 0:
				t.Errorf("asked the token source for claims %q; %s cannot meet them", asked, tt.kind)
			case tt.wantClaims != "" && (len(asked) != 1 || asked[0] != tt.wantClaims):
				t.Errorf("claims asked %q, want once %s", asked, tt.wantClaims)
			}
			if tt.wantErr == nil {
				if err != nil || g.RequestID == "" || e.srv.CreateCount() != 1 {
					t.Fatalf("grant %+v, %v, %d requests; want one granted request", g, err, e.srv.CreateCount())
				}
				return
			}
			msg := pim.UserMessage(err)
			for _, w := range tt.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			var ce *pim.ChallengeError
			if !errors.As(err, &ce) {
				t.Errorf("err = %v, want a ChallengeError", err)
			}
			if n := e.srv.CreateCount(); n != 0 {
				t.Errorf("%d requests created", n)
			}
		})
	}
}

// A role whose refusal carried a claims challenge gets the stepped-up
// token before its next request, not after another refusal.
func TestStepUpUpFront(t *testing.T) {
	e := start(t, stepUpScenario())
	src := &stepUpSource{srv: e.srv}
	c := e.client(t, alice, func(c *pim.Config) { c.Credential, c.CredentialKind = src, "browser" })
	r := req("Context Role")
	r.Duration = time.Minute
	if _, err := e.activate(c, context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Minute) // the grant ends
	if _, err := e.activate(c, context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	if asked := src.asked(); len(asked) != 2 {
		t.Fatalf("claims asked %d times, want 2 (after the first refusal, then up front)", len(asked))
	}
	if n := e.srv.CreateCount(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// A token without the PIM permissions is refused by Graph; the refusal
// names what the token lacks and how to get a token that has it.
func TestMissingScopes(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		want   []string
	}{
		{"read only", []string{"RoleManagement.Read.Directory"}, []string{"PermissionScopeNotGranted", "lacks the delegated permission RoleAssignmentSchedule.ReadWrite.Directory;"}},
		{"the Azure CLI's scopes", []string{"Directory.AccessAsUser.All", "User.ReadWrite.All"},
			[]string{"RoleAssignmentSchedule.ReadWrite.Directory, RoleEligibilitySchedule.Read.Directory, RoleManagement.Read.Directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, scenario())
			c := e.client(t, alice, func(c *pim.Config) {
				c.Credential = emuCred{srv: e.srv, oid: alice, opts: []pimtest.TokenOption{pimtest.WithScopes(tt.scopes...)}}
			})
			_, err := e.activate(c, context.Background(), req("Helpdesk Administrator"), nil)
			var ge *pim.GraphError
			if !errors.As(err, &ge) || ge.StatusCode != 403 {
				t.Fatalf("err = %v, want a 403", err)
			}
			msg := pim.UserMessage(err)
			for _, w := range append(tt.want, "approvals.clientId", "admin consent", "mcp-gate login") {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}
