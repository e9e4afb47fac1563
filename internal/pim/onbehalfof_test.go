package pim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

const (
	gateClientID = "0000aaaa-1111-4222-8333-444444444444"
	gateAppURI   = "api://mcp-gate"
)

// Each user's activation is made with a Graph token for that user, got by
// exchanging the token they presented to the gate; a user whose token the
// gate has not seen cannot activate.
func TestOnBehalfOfActivatesForEachUser(t *testing.T) {
	sc := scenario()
	sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: bob, Role: helpdeskID})
	e := start(t, sc)
	e.srv.RegisterApp(pimtest.App{ClientID: gateClientID, Secret: "s3cret", IdentifierURI: gateAppURI})
	newOBO := func(secret string) *pim.OnBehalfOf {
		o, err := pim.NewOnBehalfOf(pim.OnBehalfOfConfig{
			TenantID: e.srv.TenantID(), ClientID: gateClientID, Auth: pim.ClientAuth{Secret: secret},
			Authority: e.srv.Authority(), AuthorityCAFile: e.caFile,
			Client: pim.Config{GraphURL: e.srv.URL(), CAFile: e.caFile, PollInterval: time.Second, Clock: e.clk, Jitter: func() float64 { return 0.5 }},
		})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := newOBO("s3cret")
	ctx := context.Background()
	for _, u := range []string{alice, bob} {
		if err := o.Remember(u, e.srv.UserToken(u, gateAppURI)); err != nil {
			t.Fatal(err)
		}
		r := req(helpdeskID)
		r.Principal = u
		var g pim.Grant
		var err error
		e.run(func() { g, err = o.Activate(ctx, r, nil) })
		if err != nil || g.RequestID == "" {
			t.Fatalf("%s: Activate = %+v, %v", u, g, err)
		}
		if _, live, err := o.Active(ctx, u, mgpolicy.Target{Role: helpdeskID}); err != nil || !live {
			t.Fatalf("%s: Active = %v, %v", u, live, err)
		}
	}
	for _, r := range e.srv.Requests() {
		if r.Principal != alice && r.Principal != bob {
			t.Errorf("request for %s", r.Principal)
		}
	}
	if n := len(e.srv.Requests()); n != 2 {
		t.Fatalf("%d requests, want one per user", n)
	}
	if id, err := o.Resolve(pim.WithCaller(ctx, bob), mgpolicy.Target{Role: "Helpdesk Administrator"}); err != nil || id != helpdeskID {
		t.Fatalf("ResolveRole as bob = %q, %v", id, err)
	}

	r := req(helpdeskID)
	r.Principal = "9d2f9c41-33aa-4e6b-8f0d-0c9e8b7a6f99"
	if _, err := o.Activate(ctx, r, nil); !errors.Is(err, pim.ErrNoCaller) {
		t.Fatalf("Activate for a user never seen = %v, want ErrNoCaller", err)
	}
	if _, err := o.Principal(ctx); !errors.Is(err, pim.ErrNoCaller) {
		t.Fatalf("Principal = %v, want ErrNoCaller", err)
	}

	// A wrong secret: Entra refuses the exchange, and the activation fails
	// as a sign-in failure.
	bad := newOBO("wrong")
	if err := bad.Remember(bob, e.srv.UserToken(bob, gateAppURI)); err != nil {
		t.Fatal(err)
	}
	var err error
	r.Principal = bob
	e.run(func() { _, err = bad.Activate(ctx, r, nil) })
	if !errors.Is(err, pim.ErrAuth) {
		t.Fatalf("Activate with a wrong client secret = %v, want ErrAuth", err)
	}
}

// A role that needs MFA or an authentication context on activation: the
// exchange asks Entra for those claims, which it grants only when the
// user's own sign-in to the gate met them; else the error carries the
// claims for the user's client to sign in for.
func TestOnBehalfOfStepUp(t *testing.T) {
	sc := stepUpScenario()
	sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: bob, Role: ctxRoleID}, pimtest.Eligibility{Principal: bob, Role: mfaID})
	e := start(t, sc)
	e.srv.RegisterApp(pimtest.App{ClientID: gateClientID, Secret: "s3cret", IdentifierURI: gateAppURI})
	o, err := pim.NewOnBehalfOf(pim.OnBehalfOfConfig{
		TenantID: e.srv.TenantID(), ClientID: gateClientID, Auth: pim.ClientAuth{Secret: "s3cret"},
		Authority: e.srv.Authority(), AuthorityCAFile: e.caFile,
		Client: pim.Config{GraphURL: e.srv.URL(), CAFile: e.caFile, PollInterval: time.Second, Clock: e.clk, Jitter: func() float64 { return 0.5 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, role string
		token            []pimtest.UserTokenOption
		claims           string // the challenge for the user's client; empty: activated
	}{
		{"MFA not in the sign-in", alice, mfaID, nil, mfaClaims},
		{"authentication context not in the sign-in", alice, ctxRoleID, []pimtest.UserTokenOption{pimtest.UserMFA()}, acrsClaims},
		{"another context than the role's", bob, ctxRoleID, []pimtest.UserTokenOption{pimtest.UserMFA(), pimtest.UserACRS("c2")}, acrsClaims},
		{"MFA met", bob, mfaID, []pimtest.UserTokenOption{pimtest.UserMFA()}, ""},
		{"the context met after signing in again", alice, ctxRoleID, []pimtest.UserTokenOption{pimtest.UserMFA(), pimtest.UserACRS("c1")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := o.Remember(tt.user, e.srv.UserToken(tt.user, gateAppURI, tt.token...)); err != nil {
				t.Fatal(err)
			}
			r := req(tt.role)
			r.Principal = tt.user
			var g pim.Grant
			var err error
			e.run(func() { g, err = o.Activate(context.Background(), r, nil) })
			if tt.claims == "" {
				if err != nil || g.RequestID == "" {
					t.Fatalf("Activate = %+v, %v, want a grant", g, err)
				}
				return
			}
			var ce *pim.ChallengeError
			if !errors.As(err, &ce) || ce.ClientClaims() != tt.claims {
				t.Fatalf("Activate = %v, want a challenge for the client to sign in for %s", err, tt.claims)
			}
			if msg := pim.UserMessage(err); !strings.Contains(msg, "sign in to your MCP client again") {
				t.Errorf("the user is told %q", msg)
			}
		})
	}
}
