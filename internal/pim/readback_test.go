package pim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// A request that reads Provisioned gives a grant only when Graph then lists
// a live assignment of the role for the principal; otherwise the activation
// fails with a NotLiveError saying so, and nothing is cached or run.
func TestProvisionedIsReadBack(t *testing.T) {
	tests := []struct {
		name string
		// after runs when the approver approves the request.
		after   func(t *testing.T, srv *pimtest.Server)
		wantErr bool // the read-back itself failed (NotLiveError.Err)
		wantMsg string
	}{
		{name: "revoked before the read-back", after: func(t *testing.T, srv *pimtest.Server) {
			if err := srv.Revoke(alice, privRoleID); err != nil {
				t.Error(err)
			}
		}, wantMsg: "no live assignment"},
		{name: "assignments unreadable", after: func(t *testing.T, srv *pimtest.Server) {
			srv.SetFaults(pimtest.Faults{AssignmentReadStatus: http.StatusForbidden})
		}, wantErr: true, wantMsg: "could not be read back"},
		{name: "assignments unavailable", after: func(t *testing.T, srv *pimtest.Server) {
			srv.SetFaults(pimtest.Faults{AssignmentReadStatus: http.StatusServiceUnavailable, RetryAfter: "2"})
		}, wantErr: true, wantMsg: "could not be read back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, scenario())
			onStatus := func(s pim.Status) {
				if s.Status == "PendingApproval" && s.Elapsed == 0 {
					if err := e.srv.Approve(s.RequestID); err != nil {
						t.Error(err)
					}
					tt.after(t, e.srv)
				}
			}
			g, err := e.activate(e.client(t, alice), context.Background(), req(privRoleID), onStatus)
			var nl *pim.NotLiveError
			if !errors.As(err, &nl) {
				t.Fatalf("Activate = %+v, %v; want a NotLiveError", g, err)
			}
			id := e.srv.Requests()[0].ID
			if nl.RequestID != id || (nl.Err != nil) != tt.wantErr {
				t.Errorf("NotLiveError = %+v, want request %s, read failure %v", nl, id, tt.wantErr)
			}
			msg := pim.UserMessage(err)
			if !strings.Contains(msg, tt.wantMsg) && !strings.Contains(msg, "shows no live assignment") || !strings.Contains(msg, id) || !strings.Contains(msg, "nothing was run") {
				t.Errorf("UserMessage = %q", msg)
			}
		})
	}
}

// fakeGraph answers Activate's requests with fixed bodies, so that a test
// can put in them what the emulator never serves: entries of other
// principals, or an instance listed only some reads after its request
// reads Provisioned.
type fakeGraph struct {
	eligible, assigned string // JSON arrays
	assignedFrom       int32  // the assignment read from which assigned is listed (1 = the first)
	reads              atomic.Int32
}

func (f *fakeGraph) Do(r *http.Request) (*http.Response, error) {
	status, body := http.StatusOK, `{"value":[]}`
	switch {
	case strings.Contains(r.URL.Path, "roleEligibilityScheduleInstances"):
		body = `{"value":` + f.eligible + `}`
	case strings.Contains(r.URL.Path, "roleAssignmentScheduleInstances"):
		if f.reads.Add(1) >= f.assignedFrom {
			body = `{"value":` + f.assigned + `}`
		}
	case r.Method == http.MethodPost:
		status, body = http.StatusCreated, `{"id":"req-1","status":"Provisioned","principalId":"`+alice+`"}`
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
		Body: io.NopCloser(strings.NewReader(body))}, nil
}

func fakeClient(t *testing.T, e *env, f *fakeGraph) *pim.Client {
	t.Helper()
	c, err := pim.New(pim.Config{GraphURL: "https://graph.test/v1.0", Credential: staticCred{}, Transport: f,
		Clock: e.clk, PollInterval: time.Second, PollMaxBackoff: 8 * time.Second, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entry(principal, role string) string {
	return fmt.Sprintf(`{"principalId":%q,"roleDefinitionId":%q,"directoryScopeId":"/","startDateTime":"2026-03-02T08:00:00Z","endDateTime":"2026-03-02T12:00:00Z"}`, principal, role)
}

// Entra can list the instance a little after the request reads
// Provisioned: the read-back reads again, spaced like polls, a bounded
// number of times.
func TestReadBackWaitsForTheInstance(t *testing.T) {
	tests := []struct {
		from      int32 // the assignment read that first lists it; read 1 is the already-active check
		wantReads int32
		wantGrant bool
	}{
		{from: 2, wantReads: 2, wantGrant: true},
		{from: 4, wantReads: 4, wantGrant: true},
		{from: 99, wantReads: 5}, // the check, then 4 read-backs
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.from), func(t *testing.T) {
			e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
			f := &fakeGraph{eligible: "[" + entry(alice, helpdeskID) + "]", assigned: "[" + entry(alice, helpdeskID) + "]", assignedFrom: tt.from}
			g, err := e.activate(fakeClient(t, e, f), context.Background(), req(helpdeskID), nil)
			var nl *pim.NotLiveError
			switch {
			case tt.wantGrant && (err != nil || g.RequestID != "req-1" || g.AlreadyActive || !g.End.Equal(t0.Add(3*time.Hour))):
				t.Errorf("Activate = %+v, %v; want the grant of req-1", g, err)
			case !tt.wantGrant && (!errors.As(err, &nl) || nl.Err != nil || nl.RequestID != "req-1"):
				t.Errorf("Activate = %+v, %v; want a NotLiveError without a read failure", g, err)
			}
			if n := f.reads.Load(); n != tt.wantReads {
				t.Errorf("%d assignment reads, want %d", n, tt.wantReads)
			}
		})
	}
}

type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Eligibility and assignment entries of another principal never count for
// the caller, whatever Graph returns.
func TestOtherPrincipalsEntriesAreIgnored(t *testing.T) {
	tests := []struct {
		name               string
		eligible, assigned string
		wantActive         bool
	}{
		{name: "assignment of another", assigned: "[" + entry(bob, helpdeskID) + "]"},
		{name: "assignment without principal", assigned: "[" + entry("", helpdeskID) + "]"},
		{name: "assignment of another role", assigned: "[" + entry(alice, privRoleID) + "]"},
		{name: "own assignment", assigned: "[" + entry(bob, helpdeskID) + "," + entry(strings.ToUpper(alice), helpdeskID) + "]", wantActive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
			c := fakeClient(t, e, &fakeGraph{assigned: tt.assigned})
			if _, live, err := c.Active(context.Background(), alice, mgpolicy.Target{Role: helpdeskID}); err != nil || live != tt.wantActive {
				t.Errorf("Active = %v, %v; want %v", live, err, tt.wantActive)
			}
		})
	}
	for _, eligible := range []string{entry(bob, helpdeskID), entry("", helpdeskID), entry(alice, privRoleID)} {
		e := &env{clk: &recClock{Fake: clock.NewFake(t0)}}
		f := &fakeGraph{eligible: "[" + eligible + "]", assigned: "[" + entry(alice, helpdeskID) + "]"}
		if _, err := e.activate(fakeClient(t, e, f), context.Background(), req(helpdeskID), nil); !errors.Is(err, pim.ErrNotEligible) {
			t.Errorf("eligible %s: Activate err = %v, want ErrNotEligible", eligible, err)
		}
	}
}
