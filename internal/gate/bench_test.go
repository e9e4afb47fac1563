package gate

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// BenchmarkAllowedCall is the gate's own cost for an allowed call: the
// decision, the argument digest and the audit record, written to a real
// file, around an upstream that answers at once.
func BenchmarkAllowedCall(b *testing.B) {
	pol, _, err := policy.Parse("bench.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(b.TempDir(), "audit.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cache, err := grants.New(grants.Config{Size: 16, Margin: time.Second, MaxBackground: 1, Lifetime: time.Hour, Recheck: time.Minute, Clock: clock.Real{}})
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(Config{Policy: func() *policy.Policy { return pol }, Grants: cache, Audit: log, Clock: clock.Real{}})
	if err != nil {
		b.Fatal(err)
	}
	result := proxy.Result(`{"content":[{"type":"text","text":"ok"}]}`)
	call := g.Middleware(func(context.Context, *proxy.Call) (proxy.Result, error) { return result, nil })
	c := &proxy.Call{Tool: "read_rows", Upstream: "db", Arguments: json.RawMessage(`{"table":"customers","limit":10}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
