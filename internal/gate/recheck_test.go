package gate

import (
	"errors"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// A cached grant is re-confirmed in Entra once half of approvals.recheck
// (1m here) has passed since it was seen live, in the background: calls
// keep going through meanwhile, with no Graph read before that. A grant
// Entra no longer shows stops admitting at once; one that cannot be read
// stops at its recheck. No call is forwarded on a grant last seen live
// more than recheck ago.
func TestCachedGrantIsRechecked(t *testing.T) {
	tests := []struct {
		name   string
		answer activeAnswer
		// until is the last offset at which calls are still forwarded
		// (after the confirmation was answered); the next call activates.
		until time.Duration
	}{
		{name: "revoked in Entra", answer: activeAnswer{live: false}, until: 30 * time.Second},
		{name: "read fails", answer: activeAnswer{err: errors.New("graph down")}, until: 59 * time.Second},
		{name: "still live", answer: activeAnswer{live: true, grant: pim.Grant{RequestID: "confirmed", End: t0.Add(time.Hour), Seen: t0.Add(30 * time.Second)}}, until: 89 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
			a := <-h.act.started
			a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: t0, End: t0.Add(time.Hour)}}
			if text, isErr := toolError(t, (<-done).res); isErr {
				t.Fatalf("granted call refused: %s", text)
			}
			h.act.active.Store(&tt.answer)

			forwarded := func() bool {
				t.Helper()
				done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
				select {
				case ans := <-done:
					if text, isErr := toolError(t, ans.res); isErr {
						t.Fatalf("answer = %q", text)
					}
					return true
				case a := <-h.act.started:
					a.result <- activationResult{err: errors.New("stop")}
					<-done
					return false
				}
			}
			h.clk.Advance(29 * time.Second)
			for range 10 {
				if !forwarded() {
					t.Fatal("not forwarded at +29s")
				}
			}
			if n := h.act.confirms.Load(); n != 0 {
				t.Fatalf("%d Graph reads on the cached path before half of recheck", n)
			}
			h.clk.Advance(time.Second)
			if !forwarded() {
				t.Fatal("not forwarded at +30s, while being confirmed")
			}
			// The confirmation runs in the background; once it is answered,
			// a revoked grant admits nothing.
			deadline := time.Now().Add(10 * time.Second)
			for h.act.confirms.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if tt.answer.live {
				key := grantKey(alice, policy.Target{Role: roleID}, roleID)
				for gr, _ := h.gate.cfg.Grants.Live(key, nil); gr.RequestID != "confirmed"; gr, _ = h.gate.cfg.Grants.Live(key, nil) {
					if time.Now().After(deadline) {
						t.Fatal("the confirmation was never applied")
					}
					time.Sleep(time.Millisecond)
				}
			}
			if tt.until == 30*time.Second {
				for forwarded() {
					if time.Now().After(deadline) {
						t.Fatal("a grant revoked in Entra still admits calls")
					}
				}
			}
			for _, d := range []time.Duration{59 * time.Second, 60 * time.Second, 89 * time.Second, 90 * time.Second} {
				h.clk.Advance(t0.Add(d).Sub(h.clk.Now()))
				if got, want := forwarded(), d <= tt.until; got != want {
					t.Errorf("at +%v: forwarded = %v, want %v", d, got, want)
				}
				if d > tt.until {
					break
				}
			}
		})
	}
}
