// Package gate is the decision point on mcp-gate's call path: for each
// tools/call it asks the policy what the call needs, activates the PIM role
// when it needs one (one activation per user and role, however many calls
// wait on it, with the grant cached until shortly before it ends), keeps the
// client informed while approvers decide, refuses with a reason whenever
// anything on that path fails, and writes one audit record per decision
// (before a call is forwarded, and refusing it if that record cannot be
// written) plus one with the upstream's outcome.
package gate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/callargs"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// Activator activates PIM roles for the signed-in user; *pim.Client is one.
type Activator interface {
	Principal(ctx context.Context) (string, error)
	// Resolve maps a role's or group's name to the id PIM knows it by.
	Resolve(ctx context.Context, t policy.Target) (string, error)
	Activate(ctx context.Context, req pim.Request, onStatus func(pim.Status)) (pim.Grant, error)
	// Active reads principal's live assignment of t (its Role resolved to
	// an id) from PIM, to re-confirm a cached grant.
	Active(ctx context.Context, principal string, t policy.Target) (pim.Grant, bool, error)
}

// Auditor records decisions; *audit.Log is one. Err is non-nil once it can
// take no more records: the gate then refuses every call, since a call it
// cannot account for is one it must not let through.
type Auditor interface {
	Write(ctx context.Context, r audit.Record) error
	Err() error
}

// Clock is the time source; tests pass a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// DefaultProgressEvery is how often a waiting call tells the client it is
// still waiting.
const DefaultProgressEvery = 5 * time.Second

// directoryScope is the scope of directory role grants: the whole tenant.
const directoryScope = "/"

// Config holds a Gate's dependencies.
type Config struct {
	// Policy returns the policy in force; a reload swaps what it returns.
	// New reads its approvals: and audit: settings once: like the rest of
	// what policy.RestartOnly lists, they wait for a restart.
	Policy func() *policy.Policy
	// Activator is nil when no approvals backend is configured: every call
	// that needs a role is then refused.
	Activator Activator
	Grants    *grants.Cache
	Audit     Auditor
	Clock     Clock
	Logger    *slog.Logger
	// ProgressEvery is how often a waiting call sends a progress notification;
	// default DefaultProgressEvery.
	ProgressEvery time.Duration
	// Watch, when set, hears of each call that waits for an activation
	// (the approvals page, package ui): the grant's key, the call's audit
	// record so far and the activation. What it returns is called once the
	// call is over.
	Watch func(k grants.Key, rec audit.Record, w *grants.Waiter) (over func())
}

// Gate decides tool calls. It is safe for concurrent use.
type Gate struct {
	cfg Config
	log *slog.Logger

	// The approvals: and audit: settings of the policy at New.
	approvals policy.Approvals
	audit     policy.Audit

	principal atomic.Value // string: the Activator's principal, once known
	roleIDs   sync.Map     // resolveKey (kind, name as the policy writes it) -> role definition or group object id
	confirm   grants.ConfirmFunc
}

// New returns a Gate, or an error when a required dependency is missing.
func New(cfg Config) (*Gate, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("gate: a policy source is required")
	case cfg.Grants == nil:
		return nil, errors.New("gate: a grant cache is required")
	case cfg.Audit == nil:
		return nil, errors.New("gate: an audit log is required")
	case cfg.Clock == nil:
		return nil, errors.New("gate: a clock is required")
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pol := cfg.Policy()
	g := &Gate{cfg: cfg, log: log, approvals: pol.Approvals(), audit: pol.Audit()}
	if cfg.Activator != nil {
		g.confirm = g.confirmGrant // made once: the cached path allocates nothing for it
	}
	return g, nil
}

// FilterTool is the proxy's tools/list filter: it hides tools the policy
// denies outright and tells the model which role, group or Azure role (and
// scope) a gated tool needs.
func (g *Gate) FilterTool(t *mcp.Tool) bool {
	hidden, needs := g.cfg.Policy().Visibility(t.Name)
	if hidden {
		return false
	}
	if needs.Role != "" {
		// A client that runs calls as tasks need not give up on a call
		// that waits for approval: it polls the task (see proxy/tasks.go).
		t.Execution = &mcp.ToolExecution{TaskSupport: mcp.TaskSupportOptional}
		note := fmt.Sprintf("Requires %s (approval may take minutes).", needs)
		if t.Description == "" {
			t.Description = note
		} else {
			t.Description += "\n\n" + note
		}
	}
	return true
}

// Middleware puts the gate in front of the proxy's forwarder.
func (g *Gate) Middleware(next proxy.CallFunc) proxy.CallFunc {
	return func(ctx context.Context, c *proxy.Call) (proxy.Result, error) {
		return g.call(ctx, c, next)
	}
}

// call is one call from decision to answer.
func (g *Gate) call(ctx context.Context, c *proxy.Call, next proxy.CallFunc) (proxy.Result, error) {
	start := g.cfg.Clock.Now()
	pol := g.cfg.Policy()
	rec := audit.Record{
		TraceID:  newTraceID(),
		Client:   audit.Client{Name: c.Client.Name, Version: c.Client.Version},
		Tool:     c.Tool,
		Upstream: c.Upstream,
	}
	if pim.IsGUID(c.Principal) {
		// An authenticated caller (serve.auth) is on every record of the
		// call, not only on those that needed a role.
		rec.Principal = strings.ToLower(c.Principal)
	}
	// The one reading of the arguments: the decision, the audit digest and
	// the justification all use it, and c.Arguments, forwarded as they are
	// (see callargs.Args.Raw), are the bytes it was read from.
	args, argErr := callargs.Parse(c.Arguments)
	if err := g.cfg.Audit.Err(); err != nil {
		if argErr == nil {
			g.redact(&rec, args)
		}
		rec.Decision, rec.Rule = audit.DecisionDeny, pol.File()
		return g.refuse(ctx, &rec, "refused: mcp-gate cannot write its audit log, so it lets no call through until that is fixed and it is restarted: "+err.Error())
	}
	if argErr != nil {
		// Arguments the upstream could read otherwise than the gate are
		// refused whatever the rule, since no decision would be about them.
		rec.Decision, rec.Rule = audit.DecisionDeny, pol.File()
		return g.refuse(ctx, &rec, "refused: "+argErr.Error()+"; send each argument once, as valid JSON in UTF-8")
	}

	d := pol.Decide(c.Tool, args.Object())
	rec.Rule, rec.Reason = d.Rule, string(d.Reason)
	// The values the rule takes from the arguments for the PIM request
	// (a client that cannot ask its user) are the gate's, not the tool's:
	// the record and the upstream see the arguments without them.
	sent, refusal := gateArgs(pol, c, d, args)
	if refusal != "" {
		g.redact(&rec, args)
		rec.Decision = audit.DecisionDeny
		return g.refuse(ctx, &rec, refusal)
	}
	g.redact(&rec, sent)
	if sent != args {
		fwd := *c
		fwd.Arguments = sent.Raw()
		c = &fwd
	}

	switch d.Action {
	case policy.Allow:
		rec.Decision = audit.DecisionAllow
		return g.forward(ctx, &rec, c, next, start)
	case policy.Activate:
		rec.Decision, rec.Role, rec.Kind, rec.Scope, rec.Access = audit.DecisionActivate, d.Role, d.Kind.String(), d.Scope, string(d.Access)
		return g.activate(ctx, &rec, c, d, args.Object(), g.approvals, next, start)
	default:
		rec.Decision = audit.DecisionDeny
		return g.refuse(ctx, &rec, d.Why())
	}
}

// redact puts the arguments into the record as the policy asks: by default
// only their names and a digest.
func (g *Gate) redact(rec *audit.Record, args *callargs.Args) {
	rec.ArgKeys, rec.ArgsSHA256 = audit.DigestValue(args.Object())
	if raw := args.Raw(); g.audit.Arguments == policy.ArgumentsClear && len(raw) > 0 {
		rec.Args = raw
	}
}

// forward records the decision to forward the call, then sends it upstream
// and records how that went, under the same trace id. A call whose decision
// cannot be recorded is refused: nothing leaves the gate unaccounted for.
func (g *Gate) forward(ctx context.Context, rec *audit.Record, c *proxy.Call, next proxy.CallFunc, start time.Time) (proxy.Result, error) {
	sent := g.cfg.Clock.Now()
	rec.WaitMS = sent.Sub(start).Milliseconds()
	rec.Outcome = audit.OutcomeAdmitted
	if err := g.cfg.Audit.Write(ctx, *rec); err != nil {
		// The log refuses this record, and a refusal record would fare no
		// better: the operator learns of it from the error log.
		g.log.Error("audit record not written; call refused", "tool", rec.Tool, "trace", rec.TraceID, "err", err)
		return proxy.ToolErrorResult("refused: mcp-gate did not forward this call because it could not record it: " + err.Error()), nil
	}
	res, err := next(ctx, c)
	out := audit.Record{
		TraceID:    rec.TraceID,
		Principal:  rec.Principal,
		Tool:       rec.Tool,
		Upstream:   rec.Upstream,
		Decision:   rec.Decision,
		Outcome:    audit.OutcomeForwarded,
		UpstreamMS: g.cfg.Clock.Now().Sub(sent).Milliseconds(),
	}
	if err != nil {
		out.Outcome, out.Message = audit.OutcomeError, err.Error()
	}
	// The call ran whatever the client does now: its outcome is recorded.
	g.write(context.WithoutCancel(ctx), &out)
	return res, err
}

// refuse answers with a tool error and audits the refusal in one record.
// Nothing is forwarded.
func (g *Gate) refuse(ctx context.Context, rec *audit.Record, msg string) (proxy.Result, error) {
	rec.Outcome, rec.Message = audit.OutcomeRefused, msg
	g.write(ctx, rec)
	return proxy.ToolErrorResult(msg), nil
}

// write records what needs no answer from the log to go on: refusals,
// receipts, cancellations and outcomes. A failure is logged; the log then
// takes no more records, so the next call is refused.
func (g *Gate) write(ctx context.Context, rec *audit.Record) {
	if err := g.cfg.Audit.Write(ctx, *rec); err != nil {
		g.log.Error("audit record not written", "tool", rec.Tool, "trace", rec.TraceID, "err", err)
	}
}

func newTraceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
