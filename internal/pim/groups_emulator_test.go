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

// The PIM for Groups client against the emulator: the same lifecycle as
// directory roles, on the groups API.

const (
	opsGroupID    = "9a1c2b3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d" // approval
	oncallGroupID = "8b2d3c4e-5f6a-4b7c-9d8e-1f2a3b4c5d6e" // no approval
)

func groupsScenario() pimtest.Scenario {
	sc := scenario()
	sc.Groups = []pimtest.Group{
		{ID: opsGroupID, DisplayName: "Ops 'prod' admins", RequiresApproval: true},
		{ID: oncallGroupID, DisplayName: "On-call"},
	}
	sc.Eligibilities = append(sc.Eligibilities,
		pimtest.Eligibility{Principal: alice, Group: opsGroupID, Access: pimtest.AccessMember},
		pimtest.Eligibility{Principal: alice, Group: "On-call", Access: pimtest.AccessOwner})
	return sc
}

func groupReq(group string, access mgpolicy.Access) pim.Request {
	return pim.Request{Principal: alice, Target: mgpolicy.Target{Kind: mgpolicy.KindGroup, Role: group, Access: access},
		Duration: 15 * time.Minute, Justification: "test"}
}

func TestGroupActivateApprovedThenCached(t *testing.T) {
	e := start(t, groupsScenario())
	c := e.client(t, alice)
	var statuses []string
	onStatus := func(s pim.Status) {
		statuses = append(statuses, s.Status)
		if len(statuses) == 2 {
			if err := e.srv.Approve(s.RequestID); err != nil {
				t.Errorf("Approve: %v", err)
			}
		}
	}
	g, err := e.activate(c, context.Background(), groupReq("Ops 'prod' admins", mgpolicy.AccessMember), onStatus)
	if err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 || reqs[0].GroupID != opsGroupID || reqs[0].AccessID != "member" || reqs[0].RoleDefinitionID != "" || reqs[0].Status != pimtest.StatusProvisioned {
		t.Fatalf("emulator requests = %+v", reqs)
	}
	if g.RequestID != reqs[0].ID || g.RoleDefinitionID != opsGroupID || g.AlreadyActive || !g.End.After(e.clk.Now()) {
		t.Errorf("grant = %+v", g)
	}
	if strings.Join(statuses, ",") != "PendingApproval,PendingApproval,Provisioned" {
		t.Errorf("statuses = %v", statuses)
	}
	// Active now: a second activation reads the membership, creates nothing.
	g2, err := e.activate(c, context.Background(), groupReq(opsGroupID, mgpolicy.AccessMember), nil)
	if err != nil || !g2.AlreadyActive || !g2.End.Equal(g.End) || e.srv.CreateCount() != 1 {
		t.Errorf("second activation = %+v, %v; creates %d", g2, err, e.srv.CreateCount())
	}
	// Owner access is another thing, and alice is not eligible for it.
	if _, err := e.activate(c, context.Background(), groupReq(opsGroupID, mgpolicy.AccessOwner), nil); !errors.Is(err, pim.ErrNotEligible) {
		t.Errorf("owner activation err = %v, want ErrNotEligible", err)
	}
}

func TestGroupActivateRefusals(t *testing.T) {
	tests := []struct {
		name  string
		req   pim.Request
		token []pimtest.TokenOption
		is    error
		msg   string
	}{
		{"not eligible", groupReq("On-call", mgpolicy.AccessMember), nil, pim.ErrNotEligible, "not eligible for PIM group 'On-call' (member)"},
		{"no such group", groupReq("Nobody's group", mgpolicy.AccessMember), nil, pim.ErrRoleNotFound, `no Entra group is named "Nobody's group"`},
		{"no group read permission", groupReq("On-call", mgpolicy.AccessOwner),
			[]pimtest.TokenOption{pimtest.WithScopes(pim.ScopeGroupActivate, pim.ScopeGroupEligibility)}, nil, "lacks the delegated permission GroupMember.Read.All"},
		{"no groups PIM permission", groupReq(oncallGroupID, mgpolicy.AccessOwner),
			[]pimtest.TokenOption{pimtest.WithScopes(pim.ScopeActivate, pim.ScopeEligibility, pim.ScopeRoles)}, nil,
			"lacks the delegated permissions PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup, PrivilegedEligibilitySchedule.Read.AzureADGroup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, groupsScenario())
			c := e.client(t, alice, func(cfg *pim.Config) { cfg.Credential = emuCred{srv: e.srv, oid: alice, opts: tt.token} })
			_, err := e.activate(c, context.Background(), tt.req, nil)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(pim.UserMessage(err), tt.msg) {
				t.Fatalf("err = %v\nUserMessage = %q\nwant %v and %q", err, pim.UserMessage(err), tt.is, tt.msg)
			}
			if n := e.srv.CreateCount(); n != 0 {
				t.Errorf("%d requests created, want 0", n)
			}
		})
	}
}

func TestGroupCancelledContextCancelsOnTheGroupsAPI(t *testing.T) {
	e := start(t, groupsScenario())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onStatus := func(s pim.Status) {
		if s.Elapsed >= 2*time.Second {
			cancel()
		}
	}
	_, err := e.activate(e.client(t, alice), ctx, groupReq(opsGroupID, mgpolicy.AccessMember), onStatus)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 || reqs[0].Status != pimtest.StatusCanceled || reqs[0].GroupID != opsGroupID {
		t.Fatalf("emulator requests = %+v, want one Canceled group request", reqs)
	}
}

func TestGroupActivateThrottled(t *testing.T) {
	e := start(t, groupsScenario())
	c := e.client(t, alice)
	// Every third Graph request is throttled with a fractional Retry-After.
	e.srv.SetFaults(pimtest.Faults{ThrottleEvery: 3, RetryAfter: "0.25"})
	g, err := e.activate(c, context.Background(), groupReq(oncallGroupID, mgpolicy.AccessOwner), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.RoleDefinitionID != oncallGroupID || e.srv.CreateCount() != 1 {
		t.Errorf("grant %+v, creates %d", g, e.srv.CreateCount())
	}
	waited := false
	for _, w := range e.clk.Waits() {
		waited = waited || w == 250*time.Millisecond
	}
	if !waited {
		t.Errorf("no wait of the 0.25s Retry-After among %v", e.clk.Waits())
	}
}
