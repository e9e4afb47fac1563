package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

// auditFile writes a log of n records and returns its path.
func auditFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := audit.Record{Tool: fmt.Sprintf("tool_%d", i), Decision: audit.DecisionAllow, Outcome: audit.OutcomeForwarded}
		if err := l.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerify(t *testing.T) {
	good := auditFile(t, 3)
	tampered := auditFile(t, 3)
	data, err := os.ReadFile(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, bytes.Replace(data, []byte("tool_0"), []byte("tool_9"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope.jsonl")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact
		wantStderr string // a piece
	}{
		{"intact", []string{"audit", "verify", good}, 0, "ok: 3 records, chain intact\n", ""},
		{"tampered", []string{"audit", "verify", tampered}, 1, "", tampered + ":2: hash mismatch: prev is "},
		{"missing file", []string{"audit", "verify", missing}, 1, "", missing + ": open "},
		{"no subcommand", []string{"audit"}, 2, "", "Usage: mcp-gate audit verify FILE"},
		{"no file", []string{"audit", "verify"}, 2, "", "Usage: mcp-gate audit verify FILE"},
		{"two files", []string{"audit", "verify", good, good}, 2, "", "Usage: mcp-gate audit verify FILE"},
		{"unknown subcommand", []string{"audit", "sign", good}, 2, "", "Usage: mcp-gate audit verify FILE"},
		{"help", []string{"audit", "-h"}, 0, auditUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code := exitCode(io.Discard, err); code != tt.wantCode {
				t.Errorf("exit code %d, want %d (err %v)", code, tt.wantCode, err)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) || (tt.wantStderr == "") != (stderr.Len() == 0) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
