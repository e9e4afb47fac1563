package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// holdGraph makes the emulator answer every Graph request 503 and returns
// once a request that arrived after that has been answered so. The gate's
// one activation asks Graph one request at a time, so from then on nothing
// it asks is served until the faults are lifted: what an administrator
// does meanwhile happens, as far as the gate can tell, at one instant.
func (e *pimEnv) holdGraph(t *testing.T) {
	t.Helper()
	e.srv.SetFaults(pimtest.Faults{ErrorRate: 1})
	held := e.srv.HitCount()
	Eventually(t, "a Graph request answered 503", func() error {
		if e.srv.HitCount() > held {
			return nil
		}
		return errors.New("none yet")
	})
}

// TestOnlyLiveGrantsAdmit: a request that reads Provisioned admits nothing
// unless its assignment is then read back live from Graph, for this user.
func TestOnlyLiveGrantsAdmit(t *testing.T) {
	tests := []struct {
		name string
		// approve approves the pending request and does whatever else the
		// case needs before the gate reads the assignment back.
		approve func(t *testing.T, e *pimEnv, requestID string)
		want    string
		// active: the assignment is in fact live, only unreadable.
		active bool
	}{
		{name: "revoked before the read-back", want: "shows no live assignment", approve: func(t *testing.T, e *pimEnv, id string) {
			e.holdGraph(t)
			if err := e.srv.Approve(id); err != nil {
				t.Fatal(err)
			}
			if err := e.srv.Revoke(alice, dbaRole); err != nil {
				t.Fatal(err)
			}
			e.srv.SetFaults(pimtest.Faults{})
		}},
		{name: "assignment unreadable", want: "could not be read back", active: true, approve: func(t *testing.T, e *pimEnv, id string) {
			e.srv.SetFaults(pimtest.Faults{AssignmentReadStatus: http.StatusForbidden})
			if err := e.srv.Approve(id); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "assignment read failing", want: "could not be read back", active: true, approve: func(t *testing.T, e *pimEnv, id string) {
			e.srv.SetFaults(pimtest.Faults{AssignmentReadStatus: http.StatusServiceUnavailable, RetryAfter: "0.1"})
			if err := e.srv.Approve(id); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startPIM(t)
			policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice})
			c := demoGate(t, policyFile)
			done := make(chan *mcp.CallToolResult, 1)
			go func() { done <- Call(t, c, "delete_database", map[string]any{"name": "prod"}) }()
			req := e.pendingRequest(t, alice)
			tt.approve(t, e, req.ID)
			res := Receive(t, "the answer to the approved call", done)
			if text := Text(t, res); !res.IsError || !strings.Contains(text, tt.want) || !strings.Contains(text, req.ID) || !strings.Contains(text, "nothing was run") {
				t.Fatalf("answer = %q (isError %v), want a refusal with %q naming %s", text, res.IsError, tt.want, req.ID)
			}
			if got := upstreamRan(t, c, "delete_database"); got != "0" {
				t.Fatalf("the upstream ran delete_database %s times on a grant not seen live", got)
			}
			b, _ := os.ReadFile(auditFile)
			if !strings.Contains(string(b), `"outcome":"refused"`) {
				t.Fatalf("no refusal in the audit log:\n%s", b)
			}
			// Nothing was cached: with Graph healthy again, the next call
			// reads Entra afresh. It finds the assignment live when it only
			// was unreadable, else it makes a new request.
			e.srv.SetFaults(pimtest.Faults{})
			go func() { done <- Call(t, c, "delete_database", map[string]any{"name": "prod"}) }()
			if !tt.active {
				next := e.pendingRequest(t, alice)
				if next.ID == req.ID {
					t.Fatal("the refused request is pending again")
				}
				if err := e.srv.Approve(next.ID); err != nil {
					t.Fatal(err)
				}
			}
			if res := Receive(t, "the answer once live", done); res.IsError {
				t.Fatalf("answer once approved and live = %q", Text(t, res))
			}
			if got := upstreamRan(t, c, "delete_database"); got != "1" {
				t.Fatalf("the upstream ran delete_database %s times, want 1", got)
			}
		})
	}
}

// TestRevokedGrantStopsAdmitting: a grant an administrator removes in Entra
// stops admitting calls within approvals.recheck, although the gate had it
// cached for the rest of the hour.
func TestRevokedGrantStopsAdmitting(t *testing.T) {
	const recheck = 5 * time.Second
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice, approvals: fmt.Sprintf("  wait: 0s\n  recheck: %s\n", recheck)})
	c := demoGate(t, policyFile)
	args := map[string]any{"name": "prod"}
	if res := Call(t, c, "delete_database", args); !res.IsError || !strings.Contains(Text(t, res), "Not run yet") {
		t.Fatalf("first answer = %q, want a receipt", Text(t, res))
	}
	if err := e.srv.Approve(e.pendingRequest(t, alice).ID); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "the call goes through once approved", func() error {
		if res := Call(t, c, "delete_database", args); res.IsError {
			return errors.New(Text(t, res))
		}
		return nil
	})
	ran := 1

	revoked := time.Now()
	if err := e.srv.Revoke(alice, dbaRole); err != nil {
		t.Fatal(err)
	}
	// Call until a call is refused. Any call that started more than recheck
	// after the revocation was admitted on a grant last seen live more than
	// recheck before it.
	for {
		started := time.Now()
		if started.After(revoked.Add(recheck + 10*time.Second)) {
			t.Fatalf("calls still admitted %v after the grant was revoked in Entra (recheck %v)", started.Sub(revoked), recheck)
		}
		res := Call(t, c, "delete_database", args)
		if res.IsError {
			if text := Text(t, res); !strings.Contains(text, "Not run yet") {
				t.Fatalf("refusal = %q, want a receipt for a new request", text)
			}
			t.Logf("refused %v after the revocation", started.Sub(revoked).Round(time.Millisecond))
			break
		}
		ran++
		if started.After(revoked.Add(recheck)) {
			t.Fatalf("a call that started %v after the revocation was admitted (recheck %v)", started.Sub(revoked), recheck)
		}
	}
	if got := upstreamRan(t, c, "delete_database"); got != fmt.Sprint(ran) {
		t.Fatalf("the upstream ran delete_database %s times, want the %d admitted calls", got, ran)
	}
	// The refused call asked for the role again rather than reuse the grant.
	if n := e.srv.CreateCount(); n != 2 {
		t.Fatalf("%d activation requests, want 2", n)
	}
}
