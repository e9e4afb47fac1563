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
	appendRecords(t, path, n)
	return path
}

// appendRecords writes n more records to the log at path.
func appendRecords(t *testing.T, path string, n int) {
	t.Helper()
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
}

func rewrite(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cutLines drops the last n lines of data.
func cutLines(data []byte, n int) []byte {
	for range n {
		data = data[:bytes.LastIndexByte(data[:len(data)-1], '\n')+1]
	}
	return data
}

func TestAuditVerify(t *testing.T) {
	good := auditFile(t, 3)
	tampered := auditFile(t, 3)
	rewrite(t, tampered, func(data []byte) []byte { return bytes.Replace(data, []byte("tool_0"), []byte("tool_9"), 1) })
	cut := auditFile(t, 5)
	rewrite(t, cut, func(data []byte) []byte { return cutLines(data, 2) })
	lastChanged := auditFile(t, 3)
	rewrite(t, lastChanged, func(data []byte) []byte { return bytes.Replace(data, []byte("tool_2"), []byte("tool_X"), 1) })
	noHead := auditFile(t, 3)
	if err := os.Remove(audit.CheckpointPath(noHead)); err != nil {
		t.Fatal(err)
	}
	badHead := auditFile(t, 3)
	if err := os.WriteFile(audit.CheckpointPath(badHead), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	ahead := auditFile(t, 2)
	if err := os.Rename(audit.CheckpointPath(ahead), ahead+".head-2"); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, ahead, 2) // a new checkpoint for 4 records...
	if err := os.Rename(ahead+".head-2", audit.CheckpointPath(ahead)); err != nil {
		t.Fatal(err) // ...replaced by the one for the first 2
	}
	missing := filepath.Join(t.TempDir(), "nope.jsonl")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact
		wantStderr string // a piece
	}{
		{"intact", []string{"audit", "verify", good}, 0, "ok: 3 records, chain intact, checkpoint matches\n", ""},
		{"tampered", []string{"audit", "verify", tampered}, 1, "", tampered + ":2: hash mismatch: prev is "},
		{"records cut from the end", []string{"audit", "verify", cut}, 1, "", cut + ": 2 records cut from the end: the checkpoint says 5 records ending in hash "},
		{"last record changed", []string{"audit", "verify", lastChanged}, 1, "", lastChanged + ": record 3 is not the one the checkpoint names"},
		{"no checkpoint", []string{"audit", "verify", noHead}, 0, "ok: 3 records, chain intact; no checkpoint " + noHead + ".head, so records cut from the end would not show\n", ""},
		{"checkpoint unreadable", []string{"audit", "verify", badHead}, 1, "", badHead + ": checkpoint " + badHead + ".head is not a checkpoint"},
		{"records after the checkpoint", []string{"audit", "verify", ahead}, 0, "ok: 4 records, chain intact; the first 2 match the checkpoint, the rest were written after it\n", ""},
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
