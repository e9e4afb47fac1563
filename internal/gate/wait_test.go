package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/pim"

	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

func TestWaitFor(t *testing.T) {
	const byClient = "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\ntools:\n  a: {role: R}\n"
	tests := []struct {
		name   string
		policy string
		client string
		task   time.Duration // the call's own wait, as under a task
		want   time.Duration
	}{
		{"Claude Desktop gives up at 60 s", byClient, "claude-ai", 0, 45 * time.Second},
		{"Claude Code resets on progress", byClient, "claude-code", 0, 10 * time.Minute},
		{"an unknown client gets the SDK default's", byClient, "my-agent", 0, 45 * time.Second},
		{"Cursor gives up at 5 min", byClient, "cursor-vscode", 0, 4*time.Minute + 45*time.Second},
		{"the policy's wait overrides", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: 3m\ntools:\n  a: {role: R}\n", "claude-ai", 0, 3 * time.Minute},
		{"wait 0 is a receipt at once", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: 0s\ntools:\n  a: {role: R}\n", "claude-code", 0, 0},
		{"wait \"\" is by client", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: \"\"\ntools:\n  a: {role: R}\n", "claude-ai", 0, 45 * time.Second},
		{"a task waits as long as it lives", byClient, "claude-ai", 54 * time.Minute, 54 * time.Minute},
		{"a task outlasts the policy's wait", "version: 1\napprovals:\n  tenantId: 00000000-1111-2222-3333-444444444444\n  wait: 0s\ntools:\n  a: {role: R}\n", "claude-ai", time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, _, err := policy.Parse("p.yaml", []byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			if got := waitFor(pol.Approvals(), &proxy.Call{Client: proxy.ClientInfo{Name: tt.client}, Wait: tt.task}); got != tt.want {
				t.Errorf("waitFor(%q) = %v, want %v", tt.client, got, tt.want)
			}
		})
	}
}

// A client that gives up on its own clock cancels with a reason saying so;
// the user still wants the call, so the PIM request stays for approvers and
// the retry after approval goes through on the same activation. A cancel
// for any other reason withdraws it.
func TestCancelByClientClockKeepsTheActivation(t *testing.T) {
	tests := []struct {
		reason   string
		withdraw bool
	}{
		{"McpError: MCP error -32001: Request timed out", false},
		{"Request timeout", false},
		{"user pressed stop", true},
		{"", true},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			ctx, cancel := context.WithCancelCause(t.Context())
			done := h.callAsync(ctx, &proxy.Call{Tool: "drop_table"})
			a := <-h.act.started
			a.onStatus(pim.Status{RequestID: "req-9", Status: "PendingApproval"})
			h.clk.BlockUntil(2, nil)
			cancel(&proxy.CancelledError{Reason: tt.reason})
			if ans := <-done; !errors.Is(ans.err, context.Canceled) {
				t.Fatalf("cancelled call answered %s, %v", ans.res, ans.err)
			}
			if h.up.calls.Load() != 0 {
				t.Fatal("a cancelled call was forwarded")
			}
			if tt.withdraw {
				<-a.ctx.Done()
				if rec := h.audit.last(t); rec.Outcome != audit.OutcomeCancelled {
					t.Fatalf("audit = %+v", rec)
				}
				return
			}
			if rec := h.audit.last(t); rec.Outcome != audit.OutcomeReceipt || rec.RequestID != "req-9" {
				t.Fatalf("audit = %+v", rec)
			}
			if a.ctx.Err() != nil {
				t.Fatal("the client's timeout withdrew the PIM request")
			}
			a.result <- activationResult{grant: pim.Grant{RequestID: "req-9", End: t0.Add(time.Hour)}}
			h.callUntilForwarded(t, "drop_table")
		})
	}
}

// approvals.settle holds a call granted while it waited for that long
// before forwarding it, and a cancel meanwhile forwards nothing.
func TestSettleAfterActivation(t *testing.T) {
	settled := strings.Replace(testPolicy, "wait: 1m", "wait: 1m\n  settle: 10s", 1)
	for _, cancelled := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancelled=%v", cancelled), func(t *testing.T) {
			h := newHarness(t, settled)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := h.callAsync(ctx, &proxy.Call{Tool: "drop_table"})
			a := <-h.act.started
			a.onStatus(pim.Status{RequestID: "req-s", Status: "PendingApproval"})
			h.clk.BlockUntil(2, nil) // the wait and the progress tick
			a.result <- activationResult{grant: pim.Grant{RequestID: "req-s", End: t0.Add(time.Hour)}}
			h.clk.BlockUntil(3, nil) // and the settle
			if n := h.up.calls.Load(); n != 0 {
				t.Fatalf("forwarded %d calls before the role settled", n)
			}
			if cancelled {
				cancel()
				if ans := <-done; !errors.Is(ans.err, context.Canceled) {
					t.Fatalf("cancelled call answered %s, %v", ans.res, ans.err)
				}
				if n := h.up.calls.Load(); n != 0 {
					t.Fatal("a call cancelled while the role settled was forwarded")
				}
				return
			}
			h.clk.Advance(10 * time.Second)
			if text, isErr := toolError(t, (<-done).res); isErr || text != "done" {
				t.Fatalf("answer after settling = %q", text)
			}
			if n := h.up.calls.Load(); n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
		})
	}
}
