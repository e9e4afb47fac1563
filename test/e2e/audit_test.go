package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mcp-gate/mcp-gate/internal/testupstream"
)

// auditPolicy writes an allow-all policy whose audit log is in a fresh
// directory, and returns both paths.
func auditPolicy(t *testing.T) (policyFile, auditFile string) {
	t.Helper()
	auditFile = filepath.Join(t.TempDir(), "audit.jsonl")
	return WritePolicy(t, fmt.Sprintf("version: 1\naudit:\n  path: %q\ntools:\n  \"*\": allow\n", auditFile)), auditFile
}

type auditLine struct {
	TraceID string `json:"traceId"`
	Tool    string `json:"tool"`
	Outcome string `json:"outcome"`
}

// auditLines reads the log's records in order.
func auditLines(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditLine
	for line := range strings.Lines(string(data)) {
		var r auditLine
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// verifyAudit runs `mcp-gate audit verify` on path.
func verifyAudit(path string) (string, error) {
	out, err := exec.Command(GateBin, "audit", "verify", path).CombinedOutput()
	return string(out), err
}

// TestAuditRecordPrecedesUpstream: every call the upstream runs is already
// on record when it runs. The upstream's audited tool looks in the log for
// the record admitting its own call (by the digest of its unique
// arguments) and says whether it found it.
func TestAuditRecordPrecedesUpstream(t *testing.T) {
	policyFile, auditFile := auditPolicy(t)
	c, _ := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--audit-log", auditFile)...))

	const n = 20
	traces := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		call := func() {
			res, err := TryCall(t.Context(), c, testupstream.ProbeTool, map[string]any{"nonce": fmt.Sprint("call-", i)})
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			got := Text(t, res)
			trace, ok := strings.CutPrefix(got, "recorded ")
			if res.IsError || !ok {
				t.Errorf("call %d: the upstream ran it before its record was in the log: %q", i, got)
			}
			traces[i] = trace
		}
		if i < n/2 {
			call() // one at a time, then all at once
		} else {
			wg.Go(call)
		}
	}
	wg.Wait()

	// Each call has its admitted record and, after it, its outcome.
	_ = c.Close()
	Eventually(t, "the audit log verifies once the gate has stopped", func() error {
		if out, err := verifyAudit(auditFile); err != nil || !strings.HasPrefix(out, fmt.Sprintf("ok: %d records, chain intact, checkpoint matches", 2*n)) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	at := map[string][]string{}
	for _, r := range auditLines(t, auditFile) {
		at[r.TraceID] = append(at[r.TraceID], r.Outcome)
	}
	for i, trace := range traces {
		if got := at[trace]; len(got) != 2 || got[0] != "admitted" || got[1] != "forwarded" {
			t.Errorf("call %d (trace %q): records %v, want [admitted forwarded]", i, trace, got)
		}
	}
}

// TestAuditRecordPrecedesGrantedCall: a call admitted on a PIM grant, once
// approved and then from the cache, is on record before the upstream runs.
func TestAuditRecordPrecedesGrantedCall(t *testing.T) {
	e := startPIM(t)
	policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice})
	c, _ := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--audit-log", auditFile)...))
	probe := func(nonce string) (string, error) {
		res, err := TryCall(t.Context(), c, testupstream.ProbeTool, map[string]any{"nonce": nonce})
		if err != nil {
			return "", err
		}
		return Text(t, res), nil
	}

	type answer struct {
		text string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		text, err := probe("approved")
		done <- answer{text, err}
	}()
	if err := e.srv.Approve(e.pendingRequest(t, alice).ID); err != nil {
		t.Fatal(err)
	}
	a := Receive(t, "the answer to the approved call", done)
	if a.err != nil || !strings.HasPrefix(a.text, "recorded ") {
		t.Fatalf("call admitted on approval: %v %q, want the upstream to find its record", a.err, a.text)
	}
	if text, err := probe("cached"); err != nil || !strings.HasPrefix(text, "recorded ") {
		t.Fatalf("call admitted on the cached grant: %v %q, want the upstream to find its record", err, text)
	}
}

// httpUpstream starts the test upstream with flags over Streamable HTTP
// and returns its URL, so that a test can also talk to it directly, whatever
// the gate in front of it does.
func httpUpstream(t *testing.T, flags ...string) string {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(UpstreamBin, append(flags, "--transport", "http", "--addr-file", addrFile)...)
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var addr []byte
	Eventually(t, "the upstream listens", func() error {
		var err error
		addr, err = os.ReadFile(addrFile)
		if err != nil {
			return fmt.Errorf("%v; stderr: %s", err, stderr)
		}
		return nil
	})
	return "http://" + strings.TrimSpace(string(addr)) + testupstream.StreamablePath
}

// TestAuditLogChangedUnderTheGate: a log deleted, renamed or truncated while
// the gate runs stops it: the next call is refused with a sentence that
// names the log and the way out, nothing reaches the upstream, and the
// gate does not start again on a log its checkpoint contradicts.
func TestAuditLogChangedUnderTheGate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(path string) error
		refusal string
		restart string // the gate's complaint when started again
	}{
		{"deleted", os.Remove, "was deleted or renamed under mcp-gate", "is missing, but its checkpoint"},
		{"renamed", func(p string) error { return os.Rename(p, p+".old") }, "was deleted or renamed under mcp-gate", "is missing, but its checkpoint"},
		{"truncated", func(p string) error { return os.Truncate(p, 0) }, "was truncated under mcp-gate", "records were cut from the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstreamURL := httpUpstream(t, "--name", "db", "--demo")
			policyFile, auditFile := auditPolicy(t)
			args := []string{"--policy", policyFile, "--upstream", "db=" + upstreamURL}
			c, _ := StdioGate(t, nil, args)
			if res := Call(t, c, "read_table", map[string]any{"table": "t"}); res.IsError {
				t.Fatalf("first call: %s", Text(t, res))
			}
			if err := tt.change(auditFile); err != nil {
				t.Fatal(err)
			}
			res := Call(t, c, "read_table", map[string]any{"table": "t"})
			if text := Text(t, res); !res.IsError || !strings.Contains(text, tt.refusal) || !strings.Contains(text, auditFile) || !strings.Contains(text, "restarted") {
				t.Fatalf("call after the log was %s: %q, want a refusal saying it %s, naming %s and how to recover", tt.name, text, tt.refusal, auditFile)
			}
			if res := Call(t, c, "read_table", map[string]any{"table": "t"}); !res.IsError || !strings.Contains(Text(t, res), tt.refusal) {
				t.Fatalf("the next call: %q, want it refused too until a restart", Text(t, res))
			}

			// The upstream itself says what ran: the first call only.
			tr, err := transport.NewStreamableHTTP(upstreamURL)
			if err != nil {
				t.Fatal(err)
			}
			direct := client.NewClient(tr)
			t.Cleanup(func() { _ = direct.Close() })
			Initialize(t, direct)
			if got := Text(t, Call(t, direct, "calls", map[string]any{"tool": "read_table"})); got != "1" {
				t.Fatalf("the upstream ran read_table %s times, want 1: a call that could not be recorded was forwarded", got)
			}

			out, err := exec.Command(GateBin, append(args, "--log-level", "error")...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.restart) {
				t.Fatalf("gate restarted on the changed log: %v: %s; want it to refuse, saying %q", err, out, tt.restart)
			}
		})
	}
}

// TestAuditVerifyFindsRecordsCutFromTheEnd: lines cut off the end of a log
// leave the chain intact, but not its checkpoint.
func TestAuditVerifyFindsRecordsCutFromTheEnd(t *testing.T) {
	policyFile, auditFile := auditPolicy(t)
	args := []string{"--policy", policyFile, "--"}
	args = append(args, append(Upstream("db"), "--demo")...)
	c, _ := StdioGate(t, nil, args)
	for _, table := range []string{"a", "b", "c"} {
		if res := Call(t, c, "read_table", map[string]any{"table": table}); res.IsError {
			t.Fatal(Text(t, res))
		}
	}
	_ = c.Close()
	Eventually(t, "the audit log verifies once the gate has stopped", func() error {
		if out, err := verifyAudit(auditFile); err != nil || out != "ok: 6 records, chain intact, checkpoint matches\n" {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	data, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	last := sha256.Sum256(bytes.TrimSuffix(lines[5], []byte("\n")))
	if err := os.WriteFile(auditFile, bytes.Join(lines[:4], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := verifyAudit(auditFile)
	want := fmt.Sprintf("%s: 2 records cut from the end: the checkpoint says 6 records ending in hash %s, the log has 4\n", auditFile, hex.EncodeToString(last[:]))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || out != want {
		t.Fatalf("audit verify on a log cut short: %v: %q, want exit 1 and %q", err, out, want)
	}

	out2, err := exec.Command(GateBin, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "records were cut from the end") {
		t.Fatalf("gate started on a log cut short: %v: %s", err, out2)
	}
}
