package gate

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

const (
	alice   = "11111111-1111-1111-1111-111111111111"
	roleID  = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
	groupID = "5f1e3c7a-0d4b-4e2a-9c8f-1a2b3c4d5e6f"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

const testPolicy = `version: 1
approvals:
  tenantId: 00000000-1111-2222-3333-444444444444
  wait: 1m
tools:
  read_*: allow
  drop_table: {role: Database Administrator, grant: 10m}
  pay:
    role: Treasury
    justification: required
  merge:
    - when: {repo: "prod-*"}
      role: Prod Maintainers
    - allow
  "*": deny
`

// fakeActivator activates roles by handing each activation to the test.
type fakeActivator struct {
	principal   string
	resolved    atomic.Int32
	started     chan activation
	activations atomic.Int32                 // calls of Activate
	confirms    atomic.Int32                 // calls of Active
	active      atomic.Pointer[activeAnswer] // what Active answers
}

type activation struct {
	ctx      context.Context
	req      pim.Request
	onStatus func(pim.Status)
	result   chan activationResult
}

type activationResult struct {
	grant pim.Grant
	err   error
}

func newFakeActivator() *fakeActivator {
	return &fakeActivator{principal: alice, started: make(chan activation, 16)}
}

func (f *fakeActivator) Principal(context.Context) (string, error) { return f.principal, nil }

func (f *fakeActivator) Resolve(_ context.Context, t policy.Target) (string, error) {
	f.resolved.Add(1)
	switch {
	case t.Role == "Unknown Role":
		return "", pim.ErrRoleNotFound
	case t.Kind == policy.KindGroup:
		return groupID, nil
	}
	return roleID, nil
}

func (f *fakeActivator) Activate(ctx context.Context, req pim.Request, onStatus func(pim.Status)) (pim.Grant, error) {
	f.activations.Add(1)
	a := activation{ctx: ctx, req: req, onStatus: onStatus, result: make(chan activationResult, 1)}
	f.started <- a
	select {
	case r := <-a.result:
		return r.grant, r.err
	case <-ctx.Done():
		return pim.Grant{}, ctx.Err()
	}
}

// Active answers what the test put in active, or no live assignment.
func (f *fakeActivator) Active(context.Context, string, policy.Target) (pim.Grant, bool, error) {
	f.confirms.Add(1)
	if a := f.active.Load(); a != nil {
		return a.grant, a.live, a.err
	}
	return pim.Grant{}, false, nil
}

// graphRequests is how many times the gate asked the Activator for
// anything that goes to Graph: activations and confirmations.
func (f *fakeActivator) graphRequests() int32 { return f.activations.Load() + f.confirms.Load() }

type activeAnswer struct {
	grant pim.Grant
	live  bool
	err   error
}

// memAudit keeps records in memory.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
	err  error                    // what Err reports
	fail func(audit.Record) error // if set, a non-nil result refuses the record
}

func (m *memAudit) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *memAudit) Write(_ context.Context, r audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(r); err != nil {
			return err
		}
	}
	m.recs = append(m.recs, r)
	return nil
}

// call returns the records of the last call (those with its trace id) and
// checks that they are one decision, and for a forwarded call its outcome.
func (m *memAudit) call(t *testing.T) []audit.Record {
	t.Helper()
	last := m.last(t)
	m.mu.Lock()
	defer m.mu.Unlock()
	var recs []audit.Record
	for _, r := range m.recs {
		if r.TraceID == last.TraceID {
			recs = append(recs, r)
		}
	}
	switch {
	case last.TraceID == "":
		t.Fatalf("record without a trace id: %+v", last)
	case len(recs) == 2 && recs[0].Outcome == audit.OutcomeAdmitted && recs[1].Decision == recs[0].Decision && recs[1].Tool == recs[0].Tool:
	case len(recs) == 1 && recs[0].Outcome != audit.OutcomeAdmitted && recs[0].Outcome != audit.OutcomeForwarded:
	default:
		t.Fatalf("records of one call = %+v, want an admitted record and its outcome, or one record", recs)
	}
	return recs
}

func outcomes(recs []audit.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Outcome)
	}
	return out
}

func (m *memAudit) last(t *testing.T) audit.Record {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recs) == 0 {
		t.Fatal("no audit record written")
	}
	return m.recs[len(m.recs)-1]
}

// upstream counts the calls that reach it.
type upstream struct {
	calls atomic.Int32
	args  atomic.Value // json.RawMessage: the last call's arguments
}

func (u *upstream) call(_ context.Context, c *proxy.Call) (proxy.Result, error) {
	u.calls.Add(1)
	u.args.Store(c.Arguments)
	return proxy.Result(`{"content":[{"type":"text","text":"done"}]}`), nil
}

type harness struct {
	gate  *Gate
	act   *fakeActivator
	clk   *clock.Fake
	audit *memAudit
	up    *upstream
	next  proxy.CallFunc
}

func newHarness(t *testing.T, policyYAML string, mutate ...func(*Config)) *harness {
	t.Helper()
	pol, _, err := policy.Parse("test.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	clk := clock.NewFake(t0)
	cache, err := grants.New(grants.Config{Size: 64, Margin: 30 * time.Second, MaxBackground: 8, Lifetime: time.Hour,
		Recheck: pol.Approvals().Recheck, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{act: newFakeActivator(), clk: clk, audit: &memAudit{}, up: &upstream{}}
	cfg := Config{
		Policy:    func() *policy.Policy { return pol },
		Activator: h.act,
		Grants:    cache,
		Audit:     h.audit,
		Clock:     clk,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h.gate, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.next = h.gate.Middleware(h.up.call)
	return h
}

// callAsync runs one call in the background and delivers its answer.
func (h *harness) callAsync(ctx context.Context, c *proxy.Call) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		res, err := h.next(ctx, c)
		ch <- answer{res, err}
	}()
	return ch
}

type answer struct {
	res proxy.Result
	err error
}

func toolError(t *testing.T, res proxy.Result) (string, bool) {
	t.Helper()
	var r struct {
		Content []struct{ Text string } `json:"content"`
		IsError bool                    `json:"isError"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatalf("result is not a CallToolResult: %v: %s", err, res)
	}
	if len(r.Content) == 0 {
		return "", r.IsError
	}
	return r.Content[0].Text, r.IsError
}

func TestAllowAndDenyNeedNoActivation(t *testing.T) {
	tests := []struct {
		name         string
		tool         string
		args         string
		forwarded    bool
		wantText     string
		wantOutcomes []string
	}{
		{"allowed by pattern", "read_rows", `{"table":"t"}`, true, "done", []string{audit.OutcomeAdmitted, audit.OutcomeForwarded}},
		{"denied by catch-all", "truncate", `{}`, false, "denied by test.yaml:15", []string{audit.OutcomeRefused}},
		{"condition not met falls to allow", "merge", `{"repo":"dev-x"}`, true, "done", []string{audit.OutcomeAdmitted, audit.OutcomeForwarded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			res, err := h.next(t.Context(), &proxy.Call{Tool: tt.tool, Arguments: json.RawMessage(tt.args), Principal: alice})
			if err != nil {
				t.Fatal(err)
			}
			text, isErr := toolError(t, res)
			if !strings.Contains(text, tt.wantText) || isErr == tt.forwarded {
				t.Fatalf("answer = %q (isError %v), want it to contain %q", text, isErr, tt.wantText)
			}
			if got := h.up.calls.Load() == 1; got != tt.forwarded {
				t.Fatalf("forwarded = %v, want %v", got, tt.forwarded)
			}
			recs := h.audit.call(t)
			if !slices.Equal(outcomes(recs), tt.wantOutcomes) || recs[0].ArgsSHA256 == "" {
				t.Fatalf("audit = %+v, want outcomes %v and an argument digest", recs, tt.wantOutcomes)
			}
			for _, r := range recs {
				if r.Principal != alice {
					t.Errorf("%s record names principal %q, want the caller %s", r.Outcome, r.Principal, alice)
				}
			}
			if len(h.act.started) != 0 {
				t.Fatal("an activation started for a call that needs no role")
			}
		})
	}
}

// Arguments the upstream could read otherwise than the gate are refused
// whatever the rule says, with a reason, nothing forwarded, no activation
// started, and a deny record without a digest (it would stand for one
// reading of them).
func TestAmbiguousArgumentsAreRefused(t *testing.T) {
	tests := []struct {
		name string
		tool string
		args string
		want string
	}{
		{"not an object", "merge", `[1,2]`, "must be a JSON object"},
		{"duplicate key", "merge", `{"repo":"dev","repo":"prod-db"}`, `key "repo" twice`},
		{"duplicate nested key", "read_rows", `{"o":{"a":1,"a":2}}`, `key "o.a" twice`},
		{"keys equal under case folding", "merge", `{"repo":"dev","REPO":"prod-db"}`, "differ only in case"},
		{"Kelvin sign folds to k", "read_rows", "{\"k\":1,\"\u212a\":2}", "differ only in case"},
		{"invalid UTF-8 in a value", "read_rows", "{\"t\":\"\xff\"}", "not valid UTF-8"},
		{"invalid UTF-8 in a key", "read_rows", "{\"t\xff\":1}", "not valid UTF-8"},
		{"lone surrogate", "read_rows", `{"t":"\ud800"}`, "lone UTF-16 surrogate"},
		{"trailing data", "read_rows", `{} {}`, "after the JSON object"},
		{"gated tool", "drop_table", `{"table":"a","table":"b"}`, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			res, err := h.next(t.Context(), &proxy.Call{Tool: tt.tool, Arguments: json.RawMessage(tt.args)})
			if err != nil {
				t.Fatal(err)
			}
			if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, tt.want) {
				t.Fatalf("answer = %q, want a refusal containing %q", text, tt.want)
			}
			if h.up.calls.Load() != 0 || len(h.act.started) != 0 {
				t.Fatal("forwarded or activated")
			}
			rec := h.audit.last(t)
			if rec.Decision != audit.DecisionDeny || rec.Outcome != audit.OutcomeRefused || rec.ArgsSHA256 != "" || rec.ArgKeys != nil {
				t.Fatalf("audit = %+v, want a refused deny without digest", rec)
			}
		})
	}
}

// The upstream gets the very bytes the decision was made on, and a
// condition finds its argument whatever the case of the key.
func TestDecidesOnAndForwardsOneReading(t *testing.T) {
	h := newHarness(t, testPolicy)
	raw := `{ "repo" : "dev-x", "n": 1.50e2, "s": "\u00e9\/" }`
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "merge", Arguments: json.RawMessage(raw)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.up.args.Load().(json.RawMessage); string(got) != raw {
		t.Fatalf("forwarded %s, want the bytes decided on: %s", got, raw)
	}
	for _, key := range []string{"REPO", "Repo", "rEpO"} {
		done := h.callAsync(t.Context(), &proxy.Call{Tool: "merge", Arguments: json.RawMessage(`{"` + key + `":"prod-x"}`)})
		a := <-h.act.started
		if a.req.Role != "Prod Maintainers" {
			t.Fatalf("key %s: activation of %q", key, a.req.Role)
		}
		a.result <- activationResult{err: errors.New("denied")}
		<-done
	}
	if h.up.calls.Load() != 1 {
		t.Fatalf("forwarded %d calls, want only the first", h.up.calls.Load())
	}
}

func TestAbsentArgumentsDigestLikeAnEmptyObject(t *testing.T) {
	_, empty, err := audit.ArgsDigest(json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"", "null", " {} "} {
		h := newHarness(t, testPolicy)
		if _, err := h.next(t.Context(), &proxy.Call{Tool: "read_rows", Arguments: json.RawMessage(raw)}); err != nil {
			t.Fatal(err)
		}
		if rec := h.audit.call(t)[0]; rec.ArgsSHA256 != empty || rec.Outcome != audit.OutcomeAdmitted {
			t.Fatalf("arguments %q: audit = %+v, want admitted with the digest of {}", raw, rec)
		}
	}
}

func TestGrantedCallIsForwardedAndCached(t *testing.T) {
	h := newHarness(t, testPolicy)
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{"table":"users"}`)})
	a := <-h.act.started
	if a.req.Principal != alice || a.req.Role != "Database Administrator" || a.req.Duration != 10*time.Minute {
		t.Fatalf("activation request = %+v", a.req)
	}
	if !strings.Contains(a.req.Justification, "drop_table") {
		t.Fatalf("justification %q does not name the tool", a.req.Justification)
	}
	if h.up.calls.Load() != 0 {
		t.Fatal("call forwarded before the role was granted")
	}
	a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: t0, End: t0.Add(10 * time.Minute)}}
	ans := <-done
	if text, isErr := toolError(t, ans.res); isErr || text != "done" {
		t.Fatalf("answer = %q, isError %v", text, isErr)
	}
	if recs := h.audit.call(t); recs[0].Decision != audit.DecisionActivate || recs[0].RequestID != "req-1" || recs[0].Principal != alice ||
		!slices.Equal(outcomes(recs), []string{audit.OutcomeAdmitted, audit.OutcomeForwarded}) {
		t.Fatalf("audit = %+v", recs)
	}

	// The same role again: straight through, no new activation.
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{"table":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if h.up.calls.Load() != 2 || len(h.act.started) != 0 {
		t.Fatalf("second call: forwarded %d, activations pending %d", h.up.calls.Load(), len(h.act.started))
	}
	if got := h.act.resolved.Load(); got != 1 {
		t.Fatalf("role resolved %d times, want once: the cached path must make no lookup", got)
	}
	// Past the grant's end less the margin: a new activation.
	h.clk.Advance(9*time.Minute + 31*time.Second)
	done = h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
	a = <-h.act.started
	a.result <- activationResult{err: &pim.RefusedError{Status: "Denied", RequestID: "req-2", Role: "Database Administrator"}}
	if text, isErr := toolError(t, (<-done).res); !isErr || !strings.Contains(text, "req-2") || !strings.Contains(text, "denied") {
		t.Fatalf("answer after expiry = %q", text)
	}
	if h.up.calls.Load() != 2 {
		t.Fatal("a call was forwarded on a lapsed grant")
	}
}

func TestActivationFailuresFailClosed(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"denied", &pim.RefusedError{Status: "Denied", RequestID: "req-9", Role: "Database Administrator"}, "req-9"},
		{"unreachable", pim.ErrUnreachable, "unreachable"},
		{"throttled", pim.ErrThrottled, "throttl"},
		{"not eligible", pim.ErrNotEligible, "not eligible"},
		{"deadline", context.DeadlineExceeded, "did not finish in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
			a := <-h.act.started
			a.onStatus(pim.Status{RequestID: "req-9", Status: "PendingApproval"})
			a.result <- activationResult{err: tt.err}
			ans := <-done
			text, isErr := toolError(t, ans.res)
			if !isErr || !strings.Contains(text, tt.want) || !strings.Contains(text, "Database Administrator") {
				t.Fatalf("answer = %q, want a refusal naming the role and %q", text, tt.want)
			}
			if h.up.calls.Load() != 0 {
				t.Fatal("forwarded after a failed activation")
			}
			if rec := h.audit.last(t); rec.Outcome != audit.OutcomeRefused || rec.RequestID != "req-9" {
				t.Fatalf("audit = %+v", rec)
			}
		})
	}
}

func TestRefusedBeforeAnyActivation(t *testing.T) {
	tests := []struct {
		name      string
		principal string
		tool      string
		args      string
		want      string
	}{
		{"principal not a GUID", "alice@example.com", "drop_table", `{}`, "cannot tell who is calling"},
		{"no principal", "", "drop_table", `{}`, "cannot tell who is calling"},
		{"justification required but missing", alice, "pay", `{"amount":5}`, "justification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			h.act.principal = tt.principal
			res, err := h.next(t.Context(), &proxy.Call{Tool: tt.tool, Arguments: json.RawMessage(tt.args)})
			if err != nil {
				t.Fatal(err)
			}
			if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, tt.want) {
				t.Fatalf("answer = %q, want a refusal with %q", text, tt.want)
			}
			if len(h.act.started) != 0 || h.up.calls.Load() != 0 {
				t.Fatal("activation started or call forwarded")
			}
		})
	}
}

func TestBrokenAuditLogRefusesEveryCall(t *testing.T) {
	h := newHarness(t, testPolicy)
	h.audit.err = errors.New("disk full")
	res, err := h.next(t.Context(), &proxy.Call{Tool: "read_rows"})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, "audit log") || !strings.Contains(text, "disk full") {
		t.Fatalf("answer = %q, want a refusal naming the audit failure", text)
	}
	if h.up.calls.Load() != 0 {
		t.Fatal("a call was forwarded while the audit log was broken")
	}
}

// The decision is on record before the upstream runs: the upstream looks
// for it when it is called.
func TestDecisionRecordedBeforeForwarding(t *testing.T) {
	h := newHarness(t, testPolicy)
	var seen []audit.Record // the records when the upstream ran
	h.next = h.gate.Middleware(func(ctx context.Context, c *proxy.Call) (proxy.Result, error) {
		h.audit.mu.Lock()
		seen = slices.Clone(h.audit.recs)
		h.audit.mu.Unlock()
		return h.up.call(ctx, c)
	})
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "read_rows", Arguments: json.RawMessage(`{"table":"t"}`)}); err != nil {
		t.Fatal(err)
	}
	recs := h.audit.call(t)
	if len(seen) != 1 || seen[0].TraceID != recs[0].TraceID || seen[0].Outcome != audit.OutcomeAdmitted {
		t.Fatalf("when the upstream ran the log held %+v, want this call's admitted record", seen)
	}
}

// A call whose decision cannot be recorded is refused with a sentence and
// never reaches the upstream, whichever path admitted it.
func TestUnrecordedCallIsNotForwarded(t *testing.T) {
	diskFull := errors.New("audit: write failed, log unusable until reopened: no space left on device")
	tests := []struct {
		name  string
		tool  string
		grant bool // admitted on a grant rather than by an allow rule
	}{
		{"allowed", "read_rows", false},
		{"granted", "drop_table", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy)
			h.audit.fail = func(r audit.Record) error {
				if r.Outcome == audit.OutcomeAdmitted {
					return diskFull
				}
				return nil
			}
			done := h.callAsync(t.Context(), &proxy.Call{Tool: tt.tool})
			if tt.grant {
				a := <-h.act.started
				a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: t0, End: t0.Add(10 * time.Minute)}}
			}
			ans := <-done
			if ans.err != nil {
				t.Fatal(ans.err)
			}
			text, isErr := toolError(t, ans.res)
			if !isErr || !strings.Contains(text, "did not forward this call because it could not record it") || !strings.Contains(text, "no space left on device") {
				t.Fatalf("answer = %q, want a refusal saying the call could not be recorded, and why", text)
			}
			if n := h.up.calls.Load(); n != 0 {
				t.Fatalf("the upstream ran %d times for a call that is not on record", n)
			}
		})
	}
}

// An outcome that cannot be recorded does not undo a call that ran: the
// client gets the upstream's answer.
func TestUnrecordedOutcomeStillAnswers(t *testing.T) {
	h := newHarness(t, testPolicy)
	h.audit.fail = func(r audit.Record) error {
		if r.Outcome == audit.OutcomeForwarded {
			return errors.New("disk full")
		}
		return nil
	}
	res, err := h.next(t.Context(), &proxy.Call{Tool: "read_rows"})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); isErr || text != "done" {
		t.Fatalf("answer = %q (isError %v), want the upstream's", text, isErr)
	}
	if rec := h.audit.last(t); rec.Outcome != audit.OutcomeAdmitted {
		t.Fatalf("last record = %+v, want the admitted one", rec)
	}
}

// An upstream failure is the call's outcome record.
func TestUpstreamFailureIsTheOutcome(t *testing.T) {
	h := newHarness(t, testPolicy)
	h.next = h.gate.Middleware(func(context.Context, *proxy.Call) (proxy.Result, error) {
		return nil, errors.New("upstream db crashed")
	})
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "read_rows"}); err == nil {
		t.Fatal("the upstream's failure was not passed on")
	}
	recs := h.audit.call(t)
	if !slices.Equal(outcomes(recs), []string{audit.OutcomeAdmitted, audit.OutcomeError}) || recs[1].Message != "upstream db crashed" {
		t.Fatalf("audit = %+v, want admitted, then an error naming the failure", recs)
	}
}

// grantTarget calls tool, expects an activation of want, grants it (request
// req-TOOL, an hour) and expects the call forwarded.
func (h *harness) grantTarget(t *testing.T, tool string, want policy.Target) {
	t.Helper()
	done := h.callAsync(t.Context(), &proxy.Call{Tool: tool})
	a := <-h.act.started
	if a.req.Target != want {
		t.Fatalf("%s: activation of %+v, want %+v", tool, a.req.Target, want)
	}
	a.result <- activationResult{grant: pim.Grant{RequestID: "req-" + tool, Start: t0, End: t0.Add(time.Hour)}}
	if text, isErr := toolError(t, (<-done).res); isErr {
		t.Fatalf("%s: answer = %q", tool, text)
	}
}

// An Azure role grant is keyed by its scope: the same role on another
// resource group is another activation, and the audit says the kind and
// the scope.
func TestAzureRoleGrantsKeyedByScope(t *testing.T) {
	const sub = "/subscriptions/11111111-2222-3333-4444-555555555555"
	h := newHarness(t, strings.Replace(testPolicy, "  \"*\": deny\n", `  scale: {azureRole: Contributor, scope: `+sub+`/resourceGroups/rg-prod}
  scale_dev: {azureRole: Contributor, scope: `+sub+`/resourceGroups/rg-dev}
  "*": deny
`, 1))
	h.grantTarget(t, "scale", policy.Target{Kind: policy.KindAzureRole, Role: "Contributor", Scope: sub + "/resourceGroups/rg-prod"})
	if rec := h.audit.call(t)[0]; rec.Kind != "azureRole" || rec.Scope != sub+"/resourceGroups/rg-prod" || rec.Role != "Contributor" || rec.RequestID != "req-scale" {
		t.Fatalf("audit = %+v, want the Azure role, its scope and the request", rec)
	}
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "scale"}); err != nil || h.act.activations.Load() != 1 {
		t.Fatalf("second call: err %v, activations %d", err, h.act.activations.Load())
	}
	h.grantTarget(t, "scale_dev", policy.Target{Kind: policy.KindAzureRole, Role: "Contributor", Scope: sub + "/resourceGroups/rg-dev"})
	if h.act.activations.Load() != 2 || h.up.calls.Load() != 3 {
		t.Fatalf("activations %d, forwarded %d; want 2 and 3", h.act.activations.Load(), h.up.calls.Load())
	}
}

// A group grant is keyed apart from a directory role's and from the other
// access: each needs its own activation, and the audit says which kind.
func TestGroupGrantsKeyedByKindAndAccess(t *testing.T) {
	h := newHarness(t, strings.Replace(testPolicy, "  \"*\": deny\n", `  deploy: {group: Prod deployers}
  own: {group: Prod deployers, access: owner}
  "*": deny
`, 1))
	h.grantTarget(t, "deploy", policy.Target{Kind: policy.KindGroup, Role: "Prod deployers", Access: policy.AccessMember})
	if rec := h.audit.call(t)[0]; rec.Kind != "group" || rec.Access != "member" || rec.Role != "Prod deployers" || rec.RequestID != "req-deploy" {
		t.Fatalf("audit = %+v, want the group, its access and the request", rec)
	}
	// Cached: no second activation for the same group and access.
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "deploy"}); err != nil || h.act.activations.Load() != 1 {
		t.Fatalf("second call: err %v, activations %d", err, h.act.activations.Load())
	}
	// Owner is another grant; so is a directory role, whatever its id.
	h.grantTarget(t, "own", policy.Target{Kind: policy.KindGroup, Role: "Prod deployers", Access: policy.AccessOwner})
	h.grantTarget(t, "drop_table", policy.Target{Kind: policy.KindRole, Role: "Database Administrator"})
	if h.act.activations.Load() != 3 || h.up.calls.Load() != 4 {
		t.Fatalf("activations %d, forwarded %d; want 3 and 4", h.act.activations.Load(), h.up.calls.Load())
	}
}

func TestGrantKeyRoundTrip(t *testing.T) {
	for _, tgt := range []policy.Target{
		{Kind: policy.KindRole, Role: roleID},
		{Kind: policy.KindGroup, Role: groupID, Access: policy.AccessOwner},
		{Kind: policy.KindAzureRole, Role: roleID, Scope: "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"},
	} {
		if got := keyTarget(grantKey(alice, tgt, tgt.Role)); got != tgt {
			t.Errorf("keyTarget(grantKey(%+v)) = %+v", tgt, got)
		}
	}
}

func TestNoApprovalsBackendRefusesGatedCalls(t *testing.T) {
	h := newHarness(t, testPolicy)
	h.gate.cfg.Activator = nil
	res, err := h.next(t.Context(), &proxy.Call{Tool: "drop_table"})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, "no approvals backend") {
		t.Fatalf("answer = %q", text)
	}
}

func TestReceiptAfterWaitThenBackgroundGrant(t *testing.T) {
	h := newHarness(t, testPolicy)
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
	a := <-h.act.started
	a.onStatus(pim.Status{RequestID: "req-7", Status: "PendingApproval"})
	h.clk.BlockUntil(2, nil) // the wait and the progress tick
	h.clk.Advance(time.Minute)
	ans := <-done
	text, isErr := toolError(t, ans.res)
	if !isErr || !strings.Contains(text, "req-7") || !strings.Contains(text, "Call this tool again") {
		t.Fatalf("receipt = %q", text)
	}
	if rec := h.audit.last(t); rec.Outcome != audit.OutcomeReceipt {
		t.Fatalf("audit = %+v", rec)
	}
	select {
	case <-a.ctx.Done():
		t.Fatal("activation cancelled after a receipt; it must go on in the background")
	default:
	}
	a.result <- activationResult{grant: pim.Grant{RequestID: "req-7", End: t0.Add(time.Hour)}}
	// Once granted in the background, the next call goes straight through.
	h.callUntilForwarded(t, "drop_table")
}

// callUntilForwarded calls tool until the upstream answers it, once an
// activation in the background has been granted, and fails the test if
// that started a second activation.
func (h *harness) callUntilForwarded(t *testing.T, tool string) {
	t.Helper()
	for {
		res, err := h.next(t.Context(), &proxy.Call{Tool: tool})
		if err != nil {
			t.Fatal(err)
		}
		if text, isErr := toolError(t, res); !isErr && text == "done" {
			break
		}
	}
	if len(h.act.started) != 0 {
		t.Fatal("a second activation started")
	}
}

func TestZeroWaitGivesReceiptOnceRequested(t *testing.T) {
	h := newHarness(t, strings.Replace(testPolicy, "wait: 1m", "wait: 0s", 1))
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
	a := <-h.act.started
	a.onStatus(pim.Status{RequestID: "req-0", Status: "PendingApproval"})
	if text, isErr := toolError(t, (<-done).res); !isErr || !strings.Contains(text, "req-0") {
		t.Fatalf("receipt = %q", text)
	}
}

func TestProgressWhileWaiting(t *testing.T) {
	h := newHarness(t, testPolicy)
	msgs := make(chan string, 8)
	values := make(chan float64, 8)
	c := &proxy.Call{Tool: "drop_table", Progress: func(_ context.Context, v float64, m string) { values <- v; msgs <- m }}
	done := h.callAsync(t.Context(), c)
	a := <-h.act.started
	a.onStatus(pim.Status{RequestID: "req-5", Status: "PendingApproval"})
	// Told at once of the request, then every ProgressEvery, repeating the
	// status; a repeated status report from PIM adds nothing.
	for i := range 3 {
		msg := <-msgs
		if v := <-values; v != float64(5*i) {
			t.Errorf("progress %d: value %v, want %d (seconds waited)", i, v, 5*i)
		}
		for _, want := range []string{"Database Administrator", "req-5", "PendingApproval", "Approve requests"} {
			if !strings.Contains(msg, want) {
				t.Errorf("progress %d: %q does not contain %q", i, msg, want)
			}
		}
		if i == 2 {
			break
		}
		a.onStatus(pim.Status{RequestID: "req-5", Status: "PendingApproval"})
		h.clk.BlockUntil(2, nil)
		h.clk.Advance(DefaultProgressEvery)
	}
	a.onStatus(pim.Status{RequestID: "req-5", Status: "PendingApproval"})
	h.clk.Advance(1500 * time.Millisecond) // less than a second: the value must still grow
	a.onStatus(pim.Status{RequestID: "req-5", Status: "Granted"})
	if msg := <-msgs; !strings.Contains(msg, "Granted") {
		t.Fatalf("progress after a status change = %q, want the new status", msg)
	}
	if v := <-values; v != 11.5 {
		t.Errorf("progress value after 11.5 s = %v", v)
	}
	a.result <- activationResult{grant: pim.Grant{RequestID: "req-5", End: t0.Add(time.Hour)}}
	<-done
}

func TestCancelWithdrawsActivationOnlyWhenNobodyWaits(t *testing.T) {
	h := newHarness(t, testPolicy)
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	done1 := h.callAsync(ctx1, &proxy.Call{Tool: "drop_table"})
	a := <-h.act.started
	done2 := h.callAsync(ctx2, &proxy.Call{Tool: "drop_table"})
	h.clk.BlockUntil(4, nil) // both callers wait
	cancel1()
	if ans := <-done1; !errors.Is(ans.err, context.Canceled) {
		t.Fatalf("cancelled call answered %s, %v", ans.res, ans.err)
	}
	select {
	case <-a.ctx.Done():
		t.Fatal("activation cancelled while another caller still waits")
	default:
	}
	cancel2()
	<-done2
	<-a.ctx.Done() // the last caller left: the PIM request is withdrawn
	if h.up.calls.Load() != 0 {
		t.Fatal("a cancelled call was forwarded")
	}
	if rec := h.audit.last(t); rec.Outcome != audit.OutcomeCancelled {
		t.Fatalf("audit = %+v", rec)
	}
}

func TestFilterTool(t *testing.T) {
	h := newHarness(t, strings.Replace(testPolicy, "  \"*\": deny\n", `  deploy: {group: Prod deployers, access: owner}
  scale: {azureRole: Contributor, scope: /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-prod}
  "*": deny
`, 1))
	tests := []struct {
		name     string
		visible  bool
		wantDesc string
	}{
		{"read_rows", true, "Reads rows."},
		{"drop_table", true, "Reads rows.\n\nRequires PIM role 'Database Administrator' (approval may take minutes)."},
		{"deploy", true, "Reads rows.\n\nRequires PIM group 'Prod deployers' (owner) (approval may take minutes)."},
		{"scale", true, "Reads rows.\n\nRequires Azure role 'Contributor' at /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-prod (approval may take minutes)."},
		{"truncate", false, ""},
	}
	for _, tt := range tests {
		tool := mcp.Tool{Name: tt.name, Description: "Reads rows."}
		if got := h.gate.FilterTool(&tool); got != tt.visible {
			t.Errorf("%s: visible = %v, want %v", tt.name, got, tt.visible)
		}
		if tt.visible && tool.Description != tt.wantDesc {
			t.Errorf("%s: description = %q, want %q", tt.name, tool.Description, tt.wantDesc)
		}
	}
}

func TestTruncateJustification(t *testing.T) {
	long := strings.Repeat("é", 600)
	if got := truncate(long, maxJustification); len([]rune(got)) != maxJustification {
		t.Fatalf("truncated to %d characters, want %d", len([]rune(got)), maxJustification)
	}
	if got := truncate("short", maxJustification); got != "short" {
		t.Fatalf("truncate(short) = %q", got)
	}
}

// TestReloadKeepsRestartOnlySettings: a reload changes the rules at once,
// but audit: and approvals: keep the values the gate started with.
func TestReloadKeepsRestartOnlySettings(t *testing.T) {
	started := strings.Replace(testPolicy, "wait: 1m", "wait: 0s", 1)
	h := newHarness(t, started)
	edited := strings.Replace(testPolicy, "read_*: allow", "read_*: allow\n  write_*: allow", 1) + "audit: {arguments: clear}\n"
	reloaded, _, err := policy.Parse("test.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	h.gate.cfg.Policy = func() *policy.Policy { return reloaded } // what a reload does

	// The new rule is in force, the arguments still not recorded in clear.
	res, err := h.next(t.Context(), &proxy.Call{Tool: "write_rows", Arguments: json.RawMessage(`{"password":"hunter2"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); isErr {
		t.Fatalf("write_rows refused after the reload allowed it: %s", text)
	}
	if rec := h.audit.call(t)[0]; rec.Args != nil || rec.ArgsSHA256 == "" {
		t.Fatalf("audit = %+v: audit.arguments: clear from a reload must wait for a restart", rec)
	}

	// A gated call still gets its receipt at once (wait: 0s from the
	// start), without the clock moving the reload's wait: 1m.
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table"})
	a := <-h.act.started
	a.onStatus(pim.Status{RequestID: "req-9", Status: "PendingApproval"})
	select {
	case ans := <-done:
		if text, isErr := toolError(t, ans.res); !isErr || !strings.Contains(text, "req-9") {
			t.Fatalf("receipt = %q", text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no receipt: approvals.wait: 1m from a reload took effect before a restart")
	}
	a.result <- activationResult{err: context.Canceled}
}

// TestWatchHearsEachWaitingCall: the Watch hook hears of a call that waits
// for an activation, with the grant's key, the call's record and the
// activation, and that it is over once answered; a call on a cached grant
// waits for nothing and is not heard of.
func TestWatchHearsEachWaitingCall(t *testing.T) {
	type heard struct {
		k   grants.Key
		rec audit.Record
		w   *grants.Waiter
	}
	watched := make(chan heard, 4)
	var over atomic.Int32
	h := newHarness(t, testPolicy, func(c *Config) {
		c.Watch = func(k grants.Key, rec audit.Record, w *grants.Waiter) func() {
			watched <- heard{k, rec, w}
			return func() { over.Add(1) }
		}
	})
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{"table":"users"}`)})
	a := <-h.act.started
	got := <-watched
	if got.k != (grants.Key{Principal: alice, Kind: "role", RoleID: roleID, Scope: "/"}) || got.rec.Tool != "drop_table" ||
		got.rec.Role != "Database Administrator" || got.rec.Principal != alice || got.rec.TraceID == "" || got.w == nil {
		t.Fatalf("heard %+v", got)
	}
	a.onStatus(pim.Status{RequestID: "req-1", Status: "PendingApproval"})
	for {
		p, _, next := got.w.Progress()
		if p.RequestID == "req-1" {
			break
		}
		<-next
	}
	if over.Load() != 0 {
		t.Fatal("over before the call was answered")
	}
	a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: t0, End: t0.Add(10 * time.Minute)}}
	<-done
	if over.Load() != 1 {
		t.Fatalf("over called %d times, want once", over.Load())
	}
	if _, err := h.next(t.Context(), &proxy.Call{Tool: "drop_table", Arguments: json.RawMessage(`{"table":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if len(watched) != 0 {
		t.Fatalf("a call on a cached grant was watched: %+v", <-watched)
	}
}
