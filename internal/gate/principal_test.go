package gate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

const (
	bob   = "22222222-2222-2222-2222-222222222222"
	carol = "33333333-3333-3333-3333-333333333333"
)

// A call that carries its principal (an authenticated HTTP request) is
// activated, granted and audited for that principal, never on another's
// grant; a call without one acts for the Activator's principal.
func TestPrincipalPerCall(t *testing.T) {
	h := newHarness(t, testPolicy)
	call := func(principal string) *proxy.Call {
		return &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{"table":"t"}`), Principal: principal}
	}
	grantFor := func(principal, want string) {
		t.Helper()
		done := h.callAsync(t.Context(), call(principal))
		a := <-h.act.started
		if a.req.Principal != want {
			t.Fatalf("activation for %s, want %s", a.req.Principal, want)
		}
		principal = want
		a.result <- activationResult{grant: pim.Grant{RequestID: "req-" + principal[:1], Start: t0, End: t0.Add(10 * time.Minute)}}
		if ans := <-done; ans.err != nil {
			t.Fatal(ans.err)
		}
		if rec := h.audit.call(t)[0]; rec.Principal != principal || rec.RequestID != "req-"+principal[:1] {
			t.Fatalf("audit record %+v, want principal %s", rec, principal)
		}
	}
	grantFor(bob, bob)
	if h.up.calls.Load() != 1 {
		t.Fatal("bob's granted call was not forwarded")
	}
	// Carol's call does not ride on bob's grant: it needs her own.
	grantFor(carol, carol)
	if n := h.act.activations.Load(); n != 2 {
		t.Fatalf("%d activations, want one each for bob and carol", n)
	}
	// Bob's second call runs on his cached grant.
	if _, err := h.next(t.Context(), call(bob)); err != nil || h.act.activations.Load() != 2 || h.audit.call(t)[0].Principal != bob {
		t.Fatalf("bob's second call: err %v, %d activations", err, h.act.activations.Load())
	}
	// Without a principal on the call, the Activator's (alice) is asked for.
	grantFor("", alice)
}

// A principal that is not an object id is refused before any Graph call.
func TestCallPrincipalNotAGUID(t *testing.T) {
	h := newHarness(t, testPolicy)
	res, err := h.next(t.Context(), &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{}`), Principal: "alice@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, "cannot tell who is calling") {
		t.Fatalf("answer %q", text)
	}
	if h.act.graphRequests() != 0 || h.up.calls.Load() != 0 {
		t.Fatal("a call with a malformed principal reached Graph or the upstream")
	}
}
