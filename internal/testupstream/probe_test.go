package testupstream

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

func TestAuditProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	record := func(tool, outcome, args string) {
		keys, sum, err := audit.ArgsDigest(json.RawMessage(args))
		if err != nil {
			t.Fatal(err)
		}
		r := audit.Record{TraceID: "t-" + tool + "-" + outcome, Tool: tool, Decision: audit.DecisionAllow, Outcome: outcome, ArgKeys: keys, ArgsSHA256: sum}
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// Records that must not count: another tool, another outcome, other
	// arguments; and a line that is not a record.
	record("echo", audit.OutcomeAdmitted, `{"nonce":"1"}`)
	record(ProbeTool, audit.OutcomeRefused, `{"nonce":"1"}`)
	record(ProbeTool, audit.OutcomeAdmitted, `{"nonce":"2"}`)
	record("db__"+ProbeTool, audit.OutcomeAdmitted, `{"nonce":"3"}`)

	h := newHarness(t)
	h.srv.AddAuditProbe(path)
	tests := []struct{ nonce, want string }{
		{"1", "missing"},
		{"2", "recorded t-audited-admitted"},
		{"3", "recorded t-db__audited-admitted"},
		{"4", "missing"},
	}
	for _, tt := range tests {
		if got := text(t, h.call(t, t.Context(), ProbeTool, map[string]any{"nonce": tt.nonce})); got != tt.want {
			t.Errorf("nonce %s: %q, want %q", tt.nonce, got, tt.want)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if res := h.call(t, t.Context(), ProbeTool, map[string]any{"nonce": "1"}); !res.IsError {
		t.Errorf("no log: %q, want a tool error", text(t, res))
	}
}
