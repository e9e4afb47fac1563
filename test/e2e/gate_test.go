package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// The PIM directory the gate tests run against: alice and bob may both
// activate the two roles, and approvals are given by the tests themselves.
const (
	alice    = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	bob      = "6a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"
	carol    = "7b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e" // eligible for nothing
	dbaRole  = "Database Administrator"
	treasury = "Treasury"
)

func gateScenario() pimtest.Scenario {
	return pimtest.Scenario{
		Users: []pimtest.User{{ID: alice, Name: "alice"}, {ID: bob, Name: "bob"}, {ID: carol, Name: "carol"}},
		Roles: []pimtest.Role{
			{DisplayName: dbaRole, RequiresApproval: true, RequiresJustification: true, MaxDuration: time.Hour},
			{DisplayName: treasury, RequiresApproval: true, MaxDuration: 15 * time.Minute},
		},
		Eligibilities: []pimtest.Eligibility{
			{Principal: alice, Role: dbaRole}, {Principal: alice, Role: treasury},
			{Principal: bob, Role: dbaRole},
		},
	}
}

// pimEnv is a running PIM emulator, served over HTTPS on loopback, and what
// a gate needs to reach it.
type pimEnv struct {
	srv    *pimtest.Server
	caFile string
}

func startPIM(t *testing.T) *pimEnv {
	t.Helper()
	return startPIMWith(t, gateScenario())
}

// startPIMWith starts the emulator on scenario sc.
func startPIMWith(t *testing.T, sc pimtest.Scenario) *pimEnv {
	t.Helper()
	srv, err := pimtest.NewServer(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &pimEnv{srv: srv, caFile: caFile}
}

// gateOpts shape one gate's policy.
type gateOpts struct {
	principal string // whose token the gate holds
	graphURL  string // default the emulator's
	approvals string // extra approvals: lines
	tools     string // the tools: rules, indented two spaces; default the demo tools' own
}

// gatedPolicy writes a policy in front of the demo tools and returns its
// path and the audit log's path. The gate signs in with a token the
// emulator minted for o.principal.
func (e *pimEnv) gatedPolicy(t *testing.T, o gateOpts) (policyFile, auditFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(e.srv.Token(o.principal)), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.graphURL == "" {
		o.graphURL = e.srv.URL()
	}
	auditFile = filepath.Join(dir, "audit.jsonl")
	if o.tools == "" {
		o.tools = fmt.Sprintf(`  read_table: allow
  calls: allow
  delete_database: {role: %s}
  send_payment: {role: %s}
  audited: {role: %s}
  crash: deny
  "*": deny
`, dbaRole, treasury, dbaRole)
	}
	policyFile = WritePolicy(t, fmt.Sprintf(`version: 1
approvals:
  credential: token
  tokenFile: %q
  graphURL: %s
  graphCAFile: %q
  pollInterval: 50ms
  pollMaxBackoff: 200ms
%saudit:
  path: %q
tools:
%s`, tokenFile, o.graphURL, e.caFile, o.approvals, auditFile, o.tools))
	return policyFile, auditFile
}

// demoGate starts mcp-gate on stdio in front of the test upstream's demo tools.
func demoGate(t *testing.T, policyFile string) *client.Client {
	t.Helper()
	c, _ := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--demo")...))
	return c
}

// upstreamRan is how many times the upstream ran tool: the proof of what
// was forwarded.
func upstreamRan(t *testing.T, c *client.Client, tool string) string {
	t.Helper()
	return Text(t, Call(t, c, "calls", map[string]any{"tool": tool}))
}

// pendingRequest waits until the emulator holds a pending request for
// principal and returns it.
func (e *pimEnv) pendingRequest(t *testing.T, principal string) pimtest.Request {
	t.Helper()
	var req pimtest.Request
	Eventually(t, "a pending PIM request for "+principal, func() error {
		for _, r := range e.srv.Requests() {
			if r.Principal == principal && r.Status == pimtest.StatusPendingApproval {
				req = r
				return nil
			}
		}
		return errors.New("none yet")
	})
	return req
}

func callWithProgress(ctx context.Context, c *client.Client, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = tool, args
	req.Params.Meta = &mcp.Meta{ProgressToken: mcp.ProgressToken("p-" + tool)}
	return c.CallTool(ctx, req)
}

// progressOf is the messages of the progress notifications c receives.
func progressOf(c *client.Client) <-chan string {
	progress := make(chan string, 64)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationProgress) {
			msg, _ := n.Params.AdditionalFields["message"].(string)
			progress <- msg
		}
	})
	return progress
}

// callAnswer is what a call made in the background answered.
type callAnswer struct {
	res *mcp.CallToolResult
	err error
}

// goCallWithProgress makes callWithProgress in the background, for a test
// that acts (approves, denies) while the call waits.
func goCallWithProgress(c *client.Client, tool string, args map[string]any) <-chan callAnswer {
	done := make(chan callAnswer, 1)
	go func() {
		res, err := callWithProgress(context.Background(), c, tool, args)
		done <- callAnswer{res, err}
	}()
	return done
}

// TestGateFlow is the demo's timeline as assertions: allowed, gated with
// progress then approved, cached, denied by a rule, denied by the approver.
func TestGateFlow(t *testing.T) {
	e := startPIM(t)
	policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice})
	c := demoGate(t, policyFile)

	tools, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	descriptions := map[string]string{}
	for _, tool := range tools.Tools {
		descriptions[tool.Name] = tool.Description
	}
	if _, listed := descriptions["crash"]; listed {
		t.Error("a tool the policy denies outright is listed")
	}
	if d := descriptions["delete_database"]; !strings.Contains(d, "Requires PIM role 'Database Administrator'") {
		t.Errorf("gated tool's description = %q, want the role it needs", d)
	}

	// 1. Allowed: straight through, no Graph traffic at all.
	if res := Call(t, c, "read_table", map[string]any{"table": "t"}); res.IsError || Text(t, res) != "3 rows from t" {
		t.Fatalf("allowed call: %s", Text(t, res))
	}
	if e.srv.HitCount() != 0 {
		t.Fatalf("an allowed call made %d Graph requests", e.srv.HitCount())
	}

	// 2. Gated: held until approved, with progress naming the request.
	// 3. The same role again: the cached grant admits it, with no new request.
	e.gatedThenCached(t, c, func(req pimtest.Request) error {
		if !strings.Contains(req.Justification, "delete_database") {
			return fmt.Errorf("justification %q does not name the tool", req.Justification)
		}
		return nil
	}, "Database Administrator")

	// 4. Denied by a rule: refused with the rule's location, never forwarded.
	res := Call(t, c, "crash", nil)
	if !res.IsError || !strings.Contains(Text(t, res), "denied by policies.yaml:") {
		t.Fatalf("denied call: %s", Text(t, res))
	}

	// 5. The approver denies: refused with the reason and the request id.
	denied := make(chan callAnswer, 1)
	go func() {
		res, err := TryCall(context.Background(), c, "send_payment", map[string]any{"to": "ACME", "amount": 5})
		denied <- callAnswer{res, err}
	}()
	req := e.pendingRequest(t, alice)
	if err := e.srv.Deny(req.ID); err != nil {
		t.Fatal(err)
	}
	a := Receive(t, "the denied call's answer", denied)
	if a.err != nil || !a.res.IsError || !strings.Contains(Text(t, a.res), "denied") || !strings.Contains(Text(t, a.res), req.ID) {
		t.Fatalf("call denied by the approver: %v %s", a.err, Text(t, a.res))
	}
	if got := upstreamRan(t, c, "send_payment"); got != "0" {
		t.Fatalf("a call whose role was denied ran %s times", got)
	}
	if got := upstreamRan(t, c, "delete_database"); got != "2" {
		t.Fatalf("delete_database ran %s times, want 2", got)
	}

	// The audit log holds a verifiable chain, and a tampered line is found.
	_ = c.Close()
	verify := func() (string, error) {
		out, err := exec.Command(GateBin, "audit", "verify", auditFile).CombinedOutput()
		return string(out), err
	}
	Eventually(t, "the audit log verifies once the gate has stopped", func() error {
		out, err := verify()
		if err != nil || !strings.HasPrefix(out, "ok: ") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	// Six forwarded calls (read_table, delete_database twice, calls three
	// times) have a decision and an outcome record each; the two refusals
	// one each.
	if len(lines) != 14 {
		t.Fatalf("audit log has %d records, want 14: two per forwarded call, one per refusal", len(lines))
	}
	lines[2] = strings.Replace(lines[2], `"tool":"`, `"tool":"x`, 1)
	if err := os.WriteFile(auditFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := verify()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, ":4:") {
		t.Fatalf("audit verify on a tampered log: %v: %s (want exit 1 naming line 4, whose prev no longer matches)", err, out)
	}
}

// TestThousandCallsOneRequest: concurrent calls needing the same role share
// one PIM request, and all go through once it is approved.
func TestThousandCallsOneRequest(t *testing.T) {
	const n = 1000
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice})
	c := demoGate(t, policyFile)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			res, err := TryCall(context.Background(), c, "delete_database", map[string]any{"name": fmt.Sprint("db", i)})
			switch {
			case err != nil:
				errs <- err
			case res.IsError:
				errs <- errors.New(Text(t, res))
			}
		})
	}
	req := e.pendingRequest(t, alice)
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call refused: %v", err)
	}
	if got := e.srv.CreateCount(); got != 1 {
		t.Fatalf("%d concurrent calls created %d PIM requests, want 1", n, got)
	}
	if got := upstreamRan(t, c, "delete_database"); got != fmt.Sprint(n) {
		t.Fatalf("upstream ran delete_database %s times, want %d", got, n)
	}
}

// TestPrincipalsNeverShareAGrant: bob's gate is not admitted by alice's
// approval; his call makes his own request.
func TestPrincipalsNeverShareAGrant(t *testing.T) {
	e := startPIM(t)
	alicePolicy, _ := e.gatedPolicy(t, gateOpts{principal: alice})
	bobPolicy, _ := e.gatedPolicy(t, gateOpts{principal: bob, approvals: "  wait: 0s\n"})
	ca, cb := demoGate(t, alicePolicy), demoGate(t, bobPolicy)

	done := make(chan *mcp.CallToolResult, 1)
	go func() { done <- Call(t, ca, "delete_database", map[string]any{"name": "a"}) }()
	if err := e.srv.Approve(e.pendingRequest(t, alice).ID); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.IsError {
		t.Fatalf("alice refused: %s", Text(t, res))
	}

	res := Call(t, cb, "delete_database", map[string]any{"name": "b"})
	bobs := e.pendingRequest(t, bob)
	if !res.IsError || !strings.Contains(Text(t, res), bobs.ID) {
		t.Fatalf("bob's call = %q, want a receipt for his own request %s", Text(t, res), bobs.ID)
	}
	if got := upstreamRan(t, cb, "delete_database"); got != "0" {
		t.Fatalf("bob's call was forwarded on alice's grant (%s runs)", got)
	}
	if e.srv.CreateCount() != 2 {
		t.Fatalf("creates = %d, want one request per principal", e.srv.CreateCount())
	}
}

// TestFailClosed: whatever breaks on the approval path, the call is refused
// with a reason and never forwarded.
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name      string
		principal string
		faults    pimtest.Faults
		graphURL  string
		approvals string
		want      string
	}{
		{name: "graph unreachable", principal: alice, graphURL: "https://127.0.0.1:1/v1.0", want: "unreachable"},
		{name: "throttled past the deadline", principal: alice, faults: pimtest.Faults{ThrottleEvery: 1, RetryAfter: "120"},
			approvals: "  wait: 5s\n  deadline: 10s\n", want: "throttl"},
		{name: "graph failing", principal: alice, faults: pimtest.Faults{ErrorRate: 1}, approvals: "  deadline: 2s\n", want: "Database Administrator"},
		{name: "not eligible", principal: carol, want: "not eligible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startPIM(t)
			e.srv.SetFaults(tt.faults)
			policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: tt.principal, graphURL: tt.graphURL, approvals: tt.approvals})
			c := demoGate(t, policyFile)
			res := Call(t, c, "delete_database", map[string]any{"name": "prod"})
			if !res.IsError || !strings.Contains(Text(t, res), tt.want) {
				t.Fatalf("answer = %q (isError %v), want a refusal with %q", Text(t, res), res.IsError, tt.want)
			}
			if got := upstreamRan(t, c, "delete_database"); got != "0" {
				t.Fatalf("refused call reached the upstream %s times", got)
			}
			// Each failure comes before a request could be made: eligibility,
			// or Graph failing on the very first lookup.
			if n := e.srv.CreateCount(); n != 0 {
				t.Fatalf("%d PIM requests created on a refused call", n)
			}
			b, _ := os.ReadFile(auditFile)
			if !strings.Contains(string(b), `"outcome":"refused"`) {
				t.Fatalf("no refusal in the audit log:\n%s", b)
			}
		})
	}
}

// gatedThenCached is the approval every kind of gated role shares:
// delete_database waits on a pending request (isKind says why it is not of
// the kind under test, if it is not) with progress naming the request and
// each of names, runs only once approved, and runs again on the cached
// grant with no PIM traffic. It returns the request.
func (e *pimEnv) gatedThenCached(t *testing.T, c *client.Client, isKind func(pimtest.Request) error, names ...string) pimtest.Request {
	t.Helper()
	progress := progressOf(c)
	done := goCallWithProgress(c, "delete_database", map[string]any{"name": "staging"})
	req := e.pendingRequest(t, alice)
	if err := isKind(req); err != nil {
		t.Fatal(err)
	}
	msg := Receive(t, "progress", progress)
	for _, want := range append(names, req.ID) {
		if !strings.Contains(msg, want) {
			t.Errorf("progress %q does not name %q", msg, want)
		}
	}
	if got := upstreamRan(t, c, "delete_database"); got != "0" {
		t.Fatalf("the gated call ran %s times before approval", got)
	}
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	if a := Receive(t, "the gated call's answer", done); a.err != nil || a.res.IsError || Text(t, a.res) != "database staging deleted" {
		t.Fatalf("gated call after approval: %v %v", a.err, a.res)
	}

	hits := e.srv.HitCount()
	if res := Call(t, c, "delete_database", map[string]any{"name": "scratch"}); res.IsError {
		t.Fatalf("call on a cached grant refused: %s", Text(t, res))
	}
	if e.srv.CreateCount() != 1 || e.srv.HitCount() != hits {
		t.Errorf("a call on a cached grant went to PIM: creates %d, hits %d -> %d", e.srv.CreateCount(), hits, e.srv.HitCount())
	}
	return req
}

// TestCancelWithdrawsRequest: a client that gives up while the only caller
// waiting has its PIM request cancelled, so approvers are not asked.
func TestCancelWithdrawsRequest(t *testing.T) {
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice})
	e.cancelWithdraws(t, policyFile, func(pimtest.Request) error { return nil })
}

// cancelWithdraws is the withdrawal every kind of gated role shares: the
// client cancels a call waiting on approval, and the gate must cancel its
// pending request at PIM and never run the tool. isKind says why the
// pending request is not of the kind under test, if it is not.
func (e *pimEnv) cancelWithdraws(t *testing.T, policyFile string, isKind func(pimtest.Request) error) {
	t.Helper()
	c := demoGate(t, policyFile)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := TryCall(ctx, c, "delete_database", map[string]any{"name": "x"})
		done <- err
	}()
	req := e.pendingRequest(t, alice)
	if err := isKind(req); err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	if err := Receive(t, "the cancelled call's error", done); err == nil {
		t.Fatal("cancelled call returned no error")
	}
	Eventually(t, "the PIM request is cancelled", func() error {
		for _, r := range e.srv.Requests() {
			if r.ID == req.ID && r.Status == pimtest.StatusCanceled {
				return nil
			}
		}
		return fmt.Errorf("request %s not cancelled: %+v", req.ID, e.srv.Requests())
	})
	if got := upstreamRan(t, c, "delete_database"); got != "0" {
		t.Fatalf("a cancelled call ran %s times", got)
	}
}

// TestReceiptThenBackgroundGrant: past the wait, the call answers with a
// receipt; approval in the background lets the next call straight through.
func TestReceiptThenBackgroundGrant(t *testing.T) {
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice, approvals: "  wait: 500ms\n"})
	g := ServeGate(t, nil, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")
	c := g.Client(t)
	res := Call(t, c, "delete_database", map[string]any{"name": "x"})
	req := e.pendingRequest(t, alice)
	if !res.IsError || !strings.Contains(Text(t, res), req.ID) || !strings.Contains(Text(t, res), "Call this tool again") {
		t.Fatalf("answer past the wait = %q, want a receipt for %s", Text(t, res), req.ID)
	}
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "the call goes through once approved", func() error {
		res := Call(t, c, "delete_database", map[string]any{"name": "x"})
		if res.IsError {
			return errors.New(Text(t, res))
		}
		return nil
	})
	if e.srv.CreateCount() != 1 {
		t.Fatalf("creates = %d, want 1: the receipt's request was followed in the background", e.srv.CreateCount())
	}
}

// TestPolicyReload: an edit of the policy file changes what the running
// gate lists and allows, and tells the client; a broken edit is logged and
// the last good policy stays.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policies.yaml")
	write := func(tools string) {
		t.Helper()
		text := fmt.Sprintf("version: 1\naudit:\n  path: %q\ntools:\n%s", filepath.Join(dir, "audit.jsonl"), tools)
		// Write then rename, as editors do on save.
		tmp := policyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, policyFile); err != nil {
			t.Fatal(err)
		}
	}
	write("  \"*\": allow\n")
	c, stderr := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, Upstream("db")...))
	changed := make(chan struct{}, 16)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			changed <- struct{}{}
		}
	})
	listed := func(name string) bool {
		res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range res.Tools {
			if tool.Name == name {
				return true
			}
		}
		return false
	}
	if !listed("echo") || Call(t, c, "echo", map[string]any{"text": "hi"}).IsError {
		t.Fatal("echo not allowed under an allow-all policy")
	}

	for len(changed) > 0 {
		<-changed // notifications from the start
	}
	write("  echo: deny\n  \"*\": allow\n")
	select {
	case <-changed:
	case <-time.After(time.Minute):
		t.Fatal("no notifications/tools/list_changed after the policy changed what is listed")
	}
	// The watcher's first look at the file comes before this reload in the
	// same stream, so had it logged the load again it would show by now.
	Eventually(t, "the reload is logged", func() error {
		if !strings.Contains(stderr.String(), `msg="policy reloaded"`) {
			return errors.New("not yet")
		}
		return nil
	})
	if n := strings.Count(stderr.String(), `msg="policy loaded"`); n != 1 {
		t.Errorf("the start logged \"policy loaded\" %d times, want once:\n%s", n, stderr)
	}
	Eventually(t, "echo hidden after the reload", func() error {
		if listed("echo") {
			return errors.New("still listed")
		}
		return nil
	})
	if res := Call(t, c, "echo", map[string]any{"text": "hi"}); !res.IsError || !strings.Contains(Text(t, res), "denied by policies.yaml:5") {
		t.Fatalf("echo after the reload: %s", Text(t, res))
	}

	write("  echo: {role: \"\"}\n")
	Eventually(t, "the broken edit is logged", func() error {
		if !strings.Contains(stderr.String(), "policies.yaml:5") {
			return errors.New("no problem logged yet")
		}
		return nil
	})
	if res := Call(t, c, "echo", map[string]any{"text": "hi"}); !res.IsError || !strings.Contains(Text(t, res), "denied by policies.yaml:5") {
		t.Fatalf("after a broken edit the last good policy must stay: %s", Text(t, res))
	}
	if res := Call(t, c, "whoami", nil); res.IsError {
		t.Fatalf("whoami refused: the last good policy allows it: %s", Text(t, res))
	}
}

// TestHTTPCancelWithdrawsRequest: over Streamable HTTP, a gated call that
// the client cancels with notifications/cancelled has its PIM request
// cancelled, and never runs: the request cannot be approved any more. Both
// paths: without a progress token (the gate's direct path) and with one
// (mcp-go's, which streams progress).
func TestHTTPCancelWithdrawsRequest(t *testing.T) {
	for _, tt := range []struct{ name, meta string }{
		{"without progress token", ""},
		{"with progress token", `,"_meta":{"progressToken":"p-del"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startPIM(t)
			policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice})
			g := ServeGate(t, nil, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")
			c := g.Client(t, Protocols[0].Opts...)
			req, a := cancelPendingCallOverHTTP(t, e, g, c, tt.meta, "user gave up")
			Eventually(t, "the PIM request is cancelled", func() error {
				for _, r := range e.srv.Requests() {
					if r.ID == req.ID && r.Status == pimtest.StatusCanceled {
						return nil
					}
				}
				return fmt.Errorf("request %s not cancelled: %+v", req.ID, e.srv.Requests())
			})
			if a.err != nil || !strings.Contains(a.body, `"error"`) || strings.Contains(a.body, `"result"`) {
				t.Fatalf("cancelled call answered %d %s %v, want a JSON-RPC error", a.status, a.body, a.err)
			}
			if err := e.srv.Approve(req.ID); err == nil {
				t.Fatal("the cancelled request could still be approved")
			}
			if got := upstreamRan(t, c, "delete_database"); got != "0" {
				t.Fatalf("a cancelled call ran %s times", got)
			}
		})
	}
}

// TestClientTimeoutKeepsRequest: a cancel whose reason says the client's
// own clock ran out is not its user's choice: the PIM request stays for the
// approvers, and the user's retry after approval runs on it.
func TestClientTimeoutKeepsRequest(t *testing.T) {
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice})
	g := ServeGate(t, nil, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")
	c := g.Client(t, Protocols[0].Opts...)
	req, a := cancelPendingCallOverHTTP(t, e, g, c, "", "McpError: MCP error -32001: Request timed out")
	if a.err != nil || strings.Contains(a.body, `"result"`) {
		t.Fatalf("cancelled call answered %d %s %v, want no result", a.status, a.body, a.err)
	}
	if got := upstreamRan(t, c, "delete_database"); got != "0" {
		t.Fatalf("a cancelled call ran %s times", got)
	}
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatalf("the request was withdrawn by the client's timeout: %v", err)
	}
	Eventually(t, "the retry goes through once approved", func() error {
		if res := Call(t, c, "delete_database", map[string]any{"name": "production"}); res.IsError {
			return errors.New(Text(t, res))
		}
		return nil
	})
	if n := e.srv.CreateCount(); n != 1 {
		t.Fatalf("PIM requests created = %d, want 1: the retry must use the pending one", n)
	}
	if got := upstreamRan(t, c, "delete_database"); got != "1" {
		t.Fatalf("upstream ran %s times, want 1 (the retry)", got)
	}
}

type postAnswer struct {
	status int
	body   string
	err    error
}

// cancelPendingCallOverHTTP posts a gated call with params._meta meta (""
// for none: then without a progress token), waits for its PIM request, cancels the call with reason and returns the
// request and the call's answer.
func cancelPendingCallOverHTTP(t *testing.T, e *pimEnv, g *Gate, c *client.Client, meta, reason string) (pimtest.Request, postAnswer) {
	t.Helper()
	sid := c.GetSessionId()
	done := make(chan postAnswer, 1)
	go func() {
		status, body, err := Post(context.Background(), g.URL, sid,
			`{"jsonrpc":"2.0","id":"del-1","method":"tools/call","params":{"name":"delete_database","arguments":{"name":"production"}`+meta+`}}`)
		done <- postAnswer{status, body, err}
	}()
	req := e.pendingRequest(t, alice)
	CancelOverHTTP(t, g.URL, sid, `"del-1"`, reason)
	return req, Receive(t, "the answer to the cancelled call", done)
}
