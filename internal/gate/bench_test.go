package gate

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// BenchmarkAllowedCall is the gate's own cost for an allowed call: the
// decision, the argument digest and the audit record, written to a real
// file, around an upstream that answers at once.
func BenchmarkAllowedCall(b *testing.B) {
	benchCalls(b, nil, &proxy.Call{Tool: "read_rows", Upstream: "db", Arguments: json.RawMessage(`{"table":"customers","limit":10}`)})
}

// BenchmarkCachedGrantCall is the same for a call that needs a role whose
// grant is cached (re-confirmed every approvals.recheck, 1m): it reports
// the Graph requests made during the measured calls, which between
// confirmations must be none.
func BenchmarkCachedGrantCall(b *testing.B) {
	act := newFakeActivator()
	go func() { // the one activation that warms the cache
		a := <-act.started
		a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: time.Now(), End: time.Now().Add(time.Hour)}}
	}()
	benchCalls(b, act, &proxy.Call{Tool: "drop_table", Upstream: "db", Arguments: json.RawMessage(`{"table":"customers"}`)})
}

// benchCalls measures c through a gate with a real audit file, clock and
// grant cache; act, when set, is its Activator, and its Graph requests
// during the measured calls are reported.
func benchCalls(b *testing.B, act *fakeActivator, c *proxy.Call) {
	pol, _, err := policy.Parse("bench.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(b.TempDir(), "audit.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cache, err := grants.New(grants.Config{Size: 16, Margin: time.Second, MaxBackground: 1, Lifetime: time.Hour,
		Recheck: pol.Approvals().Recheck, Clock: clock.Real{}})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Policy: func() *policy.Policy { return pol }, Grants: cache, Audit: log, Clock: clock.Real{}}
	if act != nil {
		cfg.Activator = act
	}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	result := proxy.Result(`{"content":[{"type":"text","text":"ok"}]}`)
	call := g.Middleware(func(context.Context, *proxy.Call) (proxy.Result, error) { return result, nil })
	ctx := context.Background()
	if act != nil { // warm: activate once
		if res, err := call(ctx, c); err != nil || strings.Contains(string(res), `"isError":true`) {
			b.Fatalf("warm-up call: %s, %v", res, err)
		}
	}
	var reads0 int32
	if act != nil {
		reads0 = act.graphRequests()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if act != nil {
		b.ReportMetric(float64(act.graphRequests()-reads0), "graph-requests")
	}
}
