package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// tsEvent is one line of test/e2e/ts/client.mjs's output.
type tsEvent struct {
	Event     string          `json:"event"`
	Execution json.RawMessage `json:"execution"`
	Tasks     json.RawMessage `json:"tasks"`
	Task      struct {
		TaskID        string `json:"taskId"`
		Status        string `json:"status"`
		StatusMessage string `json:"statusMessage"`
	} `json:"task"`
	Result struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Meta map[string]json.RawMessage `json:"_meta"`
	} `json:"result"`
	Message   string `json:"message"`
	MS        int64  `json:"ms"`
	TimeoutMS int64  `json:"timeoutMs"`
}

func (e tsEvent) text() string {
	var parts []string
	for _, c := range e.Result.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, "\n")
}

// tsClient runs the TypeScript SDK client in mode against a stdio gate
// with policyFile, calling tool with args, and returns its events as they
// come. It skips the test when node_modules lacks the SDK, except under
// CI=true.
func tsClient(t *testing.T, mode, policyFile, tool string, args map[string]any) <-chan tsEvent {
	t.Helper()
	if _, err := os.Stat(filepath.Join(moduleRoot, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
		}
		t.Skipf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
	}
	a, _ := json.Marshal(args)
	argv := append([]string{filepath.Join(moduleRoot, "test", "e2e", "ts", "client.mjs"), mode, tool, string(a), "--",
		GateBin, "--policy", policyFile, "--"}, append(Upstream("db"), "--demo")...)
	cmd := exec.Command("node", argv...)
	cmd.Dir = moduleRoot
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan tsEvent, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var e tsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("client.mjs printed %q: %v", sc.Text(), err)
				continue
			}
			events <- e
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("client.mjs and gate stderr:\n%s", stderr)
		}
	})
	return events
}

// next returns the next event, failing the test if the client ended first.
func next(t *testing.T, events <-chan tsEvent, within time.Duration) tsEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("client.mjs ended early")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event from client.mjs within %s", within)
	}
	return tsEvent{}
}

// Claude Desktop gives up on a call after 60 s, as the TypeScript SDK does
// by default. With its clientInfo, a call that waits for an approval that
// does not come is answered in time with a receipt naming the PIM request,
// not left to time out. This is the one long e2e test (about 45 s).
func TestTypeScriptClaudeDesktopGetsAReceipt(t *testing.T) {
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice})
	events := tsClient(t, "receipt", policyFile, "delete_database", map[string]any{"name": "staging"})
	if ev := next(t, events, time.Minute); ev.Event != "listed" {
		t.Fatalf("first event %+v", ev)
	}
	ev := next(t, events, 2*time.Minute)
	if ev.Event != "result" {
		t.Fatalf("the SDK client got %s (%s) after %d ms, want the receipt", ev.Event, ev.Message, ev.MS)
	}
	req := e.pendingRequest(t, alice)
	if !ev.Result.IsError || !strings.Contains(ev.text(), "request "+req.ID) || !strings.Contains(ev.text(), "Call this tool again") {
		t.Errorf("result %q is not a receipt naming request %s", ev.text(), req.ID)
	}
	if ev.MS >= ev.TimeoutMS {
		t.Errorf("the receipt came after %d ms, beyond the client's %d ms timeout", ev.MS, ev.TimeoutMS)
	}
}

// A client that supports tasks gets a gated call as a task: working while
// PIM waits for approval, its status message naming the request, then the
// upstream's result once approved.
func TestTypeScriptTaskCompletesAfterApproval(t *testing.T) {
	e := startPIM(t)
	policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice})
	events := tsClient(t, "task", policyFile, "delete_database", map[string]any{"name": "staging"})
	listed := next(t, events, time.Minute)
	if listed.Event != "listed" || !strings.Contains(string(listed.Execution), `"taskSupport":"optional"`) || !strings.Contains(string(listed.Tasks), `"call"`) {
		t.Fatalf("the gated tool is not offered as a task: %+v", listed)
	}
	created := next(t, events, time.Minute)
	if created.Event != "taskCreated" || created.Task.Status != "working" {
		t.Fatalf("the call did not return a working task: %+v", created)
	}
	req := e.pendingRequest(t, alice)
	for {
		ev := next(t, events, time.Minute)
		if ev.Event != "taskStatus" || ev.Task.Status != "working" {
			t.Fatalf("before approval the client saw %+v", ev)
		}
		if strings.Contains(ev.Task.StatusMessage, req.ID) {
			if !strings.Contains(ev.Task.StatusMessage, "Waiting for approval") {
				t.Errorf("status message %q does not say it waits for approval", ev.Task.StatusMessage)
			}
			break
		}
	}
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	var ev tsEvent
	for ev = next(t, events, time.Minute); ev.Event == "taskStatus" && ev.Task.Status == "working"; ev = next(t, events, time.Minute) {
	}
	if ev.Event != "taskStatus" || ev.Task.Status != "completed" {
		t.Fatalf("after approval the client saw %+v", ev)
	}
	res := next(t, events, time.Minute)
	if res.Event != "result" || res.Result.IsError || res.text() != "database staging deleted" {
		t.Fatalf("task result %+v", res)
	}
	if _, ok := res.Result.Meta["io.modelcontextprotocol/related-task"]; !ok {
		t.Errorf("tasks/result lacks the related-task _meta: %v", res.Result.Meta)
	}
	// Audited as any gated call: admitted on the activation, then the
	// upstream's outcome, both written before the task completed.
	var outcomes []string
	for _, r := range auditLines(t, auditFile) {
		if r.Tool == "delete_database" {
			outcomes = append(outcomes, r.Outcome)
		}
	}
	if strings.Join(outcomes, ",") != "admitted,forwarded" {
		t.Errorf("audit outcomes of the task's call = %v, want admitted then forwarded", outcomes)
	}
}

// tasks/cancel is the user's choice: the PIM request is withdrawn, so
// approvers are not asked, and nothing is forwarded.
func TestTypeScriptTaskCancelWithdrawsTheRequest(t *testing.T) {
	e := startPIM(t)
	policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice})
	events := tsClient(t, "cancel", policyFile, "delete_database", map[string]any{"name": "staging"})
	var ev tsEvent
	for ev = next(t, events, time.Minute); ev.Event != "cancelled"; ev = next(t, events, time.Minute) {
		if ev.Event != "listed" && ev.Event != "taskCreated" && (ev.Event != "taskStatus" || ev.Task.Status != "working") {
			t.Fatalf("before the cancel the client saw %+v", ev)
		}
	}
	if ev.Task.Status != "cancelled" {
		t.Errorf("tasks/cancel answered %+v", ev.Task)
	}
	Eventually(t, "the PIM request is cancelled", func() error {
		reqs := e.srv.Requests()
		if len(reqs) != 1 || reqs[0].Status != pimtest.StatusCanceled {
			return fmt.Errorf("requests %+v, want the one request cancelled", reqs)
		}
		return nil
	})
	Eventually(t, "the cancel in the audit log", func() error {
		var outcomes []string
		for _, r := range auditLines(t, auditFile) {
			if r.Tool == "delete_database" {
				outcomes = append(outcomes, r.Outcome)
			}
		}
		if strings.Join(outcomes, ",") != "cancelled" {
			return fmt.Errorf("audit outcomes of the cancelled task = %v, want cancelled", outcomes)
		}
		return nil
	})
}
