package pim_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// emuARMCred mints the emulator's token for the audience asked for.
type emuARMCred struct {
	srv *pimtest.Server
	oid string
}

func (e emuARMCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	var opts []pimtest.TokenOption
	if slices.Contains(o.Scopes, pim.ARMScope) {
		opts = append(opts, pimtest.WithARMAudience())
	}
	return azcore.AccessToken{Token: e.srv.Token(e.oid, opts...), ExpiresOn: time.Now()}, nil
}

// The client and the emulator's ARM agree: one eligibility per page, every
// third request throttled with a fractional Retry-After, an eligibility at
// the subscription admitting the resource group, and the grant read back.
func TestAzureRoleAgainstTheEmulator(t *testing.T) {
	sc := scenario()
	sc.PageSize = 1
	sc.AzureRoles = []pimtest.AzureRole{{ID: contributorID, DisplayName: "Contributor"}, {ID: readerID, DisplayName: "Reader"}}
	sc.AzureEligibilities = []pimtest.AzureEligibility{
		{Principal: alice, Role: "Reader", Scope: sub}, {Principal: bob, Role: "Contributor", Scope: sub},
		{Principal: alice, Role: "Reader", Scope: rgProd}, {Principal: alice, Role: "Contributor", Scope: sub},
	}
	sc.Faults = pimtest.Faults{ThrottleEvery: 3, RetryAfter: "0.5"}
	e := start(t, sc)
	c := e.client(t, alice, func(cfg *pim.Config) { cfg.ARMURL, cfg.Credential = e.srv.ARMURL(), emuARMCred{srv: e.srv, oid: alice} })
	g, err := e.activate(c, context.Background(), azureReq(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.RoleDefinitionID != contributorID || g.AlreadyActive || !g.End.Equal(g.Start.Add(time.Hour)) {
		t.Fatalf("grant = %+v", g)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 || reqs[0].Scope != rgProd || reqs[0].ID != g.RequestID || reqs[0].Status != pimtest.StatusProvisioned {
		t.Fatalf("requests = %+v", reqs)
	}
	if !slices.Contains(e.clk.Waits(), 500*time.Millisecond) {
		t.Errorf("no 0.5s wait for the throttled reads: %v", e.clk.Waits())
	}
	// Bob's eligibility is his: for him, Reader at the group is not one.
	cb := e.client(t, bob, func(cfg *pim.Config) { cfg.ARMURL, cfg.Credential = e.srv.ARMURL(), emuARMCred{srv: e.srv, oid: bob} })
	_, err = e.activate(cb, context.Background(), pim.Request{Principal: bob, Target: mgpolicy.Target{Kind: mgpolicy.KindAzureRole, Role: "Reader", Scope: rgProd}, Duration: time.Hour}, nil)
	if !errors.Is(err, pim.ErrNotEligible) || len(e.srv.Requests()) != 1 {
		t.Fatalf("bob: %v, requests %+v", err, e.srv.Requests())
	}
}
