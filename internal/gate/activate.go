package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/authn"
	"github.com/mcp-gate/mcp-gate/internal/clients"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// maxJustification is the longest justification PIM accepts, in characters.
const maxJustification = 500

// requestIDGrace is how long past the wait a receipt waits for PIM to name
// the request it is about.
const requestIDGrace = 30 * time.Second

// approverHint says where approvers act, for progress and receipts.
const approverHint = "Approvers act in the Entra admin center: Identity Governance > Privileged Identity Management > Approve requests."

// activate forwards a call that needs a role once the role is active for the
// caller, and refuses it otherwise.
func (g *Gate) activate(ctx context.Context, rec *audit.Record, c *proxy.Call, d policy.Decision, args map[string]any,
	ap policy.Approvals, next proxy.CallFunc, start time.Time) (proxy.Result, error) {
	act := g.cfg.Activator
	if act == nil {
		return g.refuse(ctx, rec, fmt.Sprintf("%s, but no approvals backend is configured: add an approvals: section to the policy", d.Why()))
	}
	// A confirmation comes first, for every call, cached grant or not: it
	// is about this call, and nothing is looked up or requested before
	// the user has said yes. The values the rule requires are asked in
	// the same form.
	var given map[string]string
	asked := false
	if d.Confirm {
		var elicited []string
		var refusal string
		var err error
		given, elicited, refusal, err = g.ask(ctx, c, d, args, true, g.askable(c, d))
		markElicited(rec, elicited)
		if err != nil {
			return g.cancelled(ctx, rec, "the client cancelled the call while the user was asked to confirm it", err)
		}
		if refusal != "" {
			return g.refuse(ctx, rec, refusal)
		}
		asked = true
	}
	wait := waitFor(ap, c)
	principal, roleID, refusal := g.identify(ctx, c, d, wait)
	rec.Principal, rec.RoleDefinitionID = principal, roleID
	if refusal != "" {
		return g.refuse(ctx, rec, refusal)
	}
	key := grantKey(principal, d.Target, roleID)
	if gr, ok := g.cfg.Grants.Live(key, g.confirm); ok {
		rec.RequestID = gr.RequestID
		return g.forward(ctx, rec, c, next, start)
	}

	if names := g.askable(c, d); len(names) > 0 && !asked {
		// Only now that PIM must be asked is the user asked for what the
		// request needs.
		var elicited []string
		var refusal string
		var err error
		given, elicited, refusal, err = g.ask(ctx, c, d, args, false, names)
		markElicited(rec, elicited)
		if err != nil {
			return g.cancelled(ctx, rec, "the client cancelled the call while the user was asked for what the PIM request needs", err)
		}
		if refusal != "" {
			return g.refuse(ctx, rec, refusal)
		}
	}
	client := strings.TrimSpace(c.Client.Name + " " + c.Client.Version)
	justification, ticket, err := d.Justify(policy.Call{Tool: c.Tool, Upstream: c.Upstream, Client: client, TraceID: rec.TraceID, Args: args, Given: given})
	if err != nil {
		return g.refuse(ctx, rec, fmt.Sprintf("refused: %s (%s): %s", d.Target, d.Rule, err))
	}
	req := pim.Request{
		Principal:     principal,
		Target:        d.Target, // resolved already (cached); the name reads better in PIM's messages
		Duration:      d.Grant,
		Justification: truncate(justification, maxJustification),
		TicketNumber:  ticket,
		TicketSystem:  d.TicketSystem,
	}
	w := g.cfg.Grants.Join(key, func(ctx context.Context, report func(grants.Progress)) (grants.Grant, error) {
		pg, err := act.Activate(ctx, req, func(s pim.Status) {
			report(grants.Progress{RequestID: s.RequestID, Status: s.Status})
		})
		return grants.Grant{RequestID: pg.RequestID, Start: pg.Start, End: pg.End, Seen: pg.Seen}, err
	})
	if g.cfg.Watch != nil {
		defer g.cfg.Watch(key, *rec, w)()
	}
	return g.await(ctx, rec, c, d.Target.String(), w, wait, next, start)
}

// askable is the values d requires that the user is asked for: all of
// them when the client can ask, else none (they come from the arguments).
func (g *Gate) askable(c *proxy.Call, d policy.Decision) []string {
	if c.Elicit == nil {
		return nil
	}
	return needed(d)
}

// cancelled records a call the client gave up on before anything was
// requested, and answers with the cancellation.
func (g *Gate) cancelled(ctx context.Context, rec *audit.Record, msg string, err error) (proxy.Result, error) {
	rec.Outcome, rec.Message = audit.OutcomeCancelled, msg
	g.write(context.WithoutCancel(ctx), rec)
	return nil, err
}

// confirmGrant reads a cached grant back from Entra, for the grant cache's
// recheck.
func (g *Gate) confirmGrant(ctx context.Context, k grants.Key) (grants.Grant, bool, error) {
	pg, live, err := g.cfg.Activator.Active(ctx, k.Principal, keyTarget(k))
	if err != nil {
		g.log.Warn("could not re-confirm a cached grant; it lapses at its recheck", "roleDefinitionId", k.RoleID, "error", err)
	} else if !live {
		g.log.Info("a cached grant is no longer live in Entra; it admits nothing more", "roleDefinitionId", k.RoleID)
	}
	return grants.Grant{RequestID: pg.RequestID, Start: pg.Start, End: pg.End, Seen: pg.Seen}, live, err
}

// await waits for the activation behind w: it forwards once granted,
// reports progress meanwhile, answers with a receipt once the wait is over,
// and leaves (cancelling the activation if nobody else wants it) when the
// client gives up.
//
// target names what is activated for people ("PIM role 'X'", "PIM group
// 'X' (member)"), as policy.Target's String does.
func (g *Gate) await(ctx context.Context, rec *audit.Record, c *proxy.Call, target string, w *grants.Waiter,
	wait time.Duration, next proxy.CallFunc, start time.Time) (proxy.Result, error) {
	waitOver := g.cfg.Clock.After(wait)
	tick := g.cfg.Clock.After(g.cfg.ProgressEvery)
	var receiptDue bool
	var idGrace <-chan time.Time
	var told grants.Progress // what the client last heard
	progress := func(p grants.Progress, started time.Time) {
		if c.Progress == nil {
			return
		}
		// MCP wants progress to grow with every notification: the value is
		// the unrounded wait, the sentence the rounded one.
		elapsed := g.cfg.Clock.Now().Sub(started)
		c.Progress(ctx, elapsed.Seconds(), waiting(target, p, elapsed.Round(time.Second)))
		told = p
	}
	// latest is the activation's progress now, which the loop may not have
	// seen when several things happened at once.
	latest := func() grants.Progress {
		p, _, _ := w.Progress()
		rec.RequestID = p.RequestID
		return p
	}
	for {
		p, started, changed := w.Progress()
		rec.RequestID = p.RequestID
		if receiptDue && p.RequestID != "" {
			return g.receipt(ctx, rec, w, target, p)
		}
		if p.RequestID != "" && p != told {
			// The user hears of the request, and of each new status, at once.
			progress(p, started)
		}
		select {
		case <-w.Done():
			w.Leave()
			gr, err := w.Result()
			if err != nil {
				// PIM's last status can come with its answer: the refusal
				// names the request it knew of.
				p = latest()
				msg := refusal(target, p.RequestID, err)
				stepUp(ctx, err, msg)
				return g.refuse(ctx, rec, msg)
			}
			rec.RequestID = gr.RequestID
			if err := g.settle(ctx); err != nil {
				rec.Outcome, rec.Message = audit.OutcomeCancelled, "the client cancelled the call while the activated role settled"
				g.write(context.WithoutCancel(ctx), rec)
				return nil, err
			}
			if !g.cfg.Clock.Now().Before(gr.End) {
				return g.refuse(ctx, rec, fmt.Sprintf("refused: %s ended at %s, before the call could be forwarded: call again", target, gr.End.Format(time.RFC3339)))
			}
			return g.forward(ctx, rec, c, next, start)
		case <-ctx.Done():
			if proxy.ClientTimedOut(ctx) {
				// The client's clock ran out, not its user's patience: the
				// user will call again, so the request stays for approvers.
				_, _ = g.receipt(context.WithoutCancel(ctx), rec, w, target, latest())
				return nil, ctx.Err()
			}
			w.Leave()
			rec.Outcome, rec.Message = audit.OutcomeCancelled, "the client cancelled the call while it waited for approval"
			g.write(context.WithoutCancel(ctx), rec)
			return nil, ctx.Err()
		case <-waitOver:
			// A receipt without a request id gives the user nothing to look
			// for, so it waits a little longer for PIM to have the request.
			receiptDue, waitOver = true, nil
			idGrace = g.cfg.Clock.After(requestIDGrace)
		case <-idGrace:
			return g.receipt(ctx, rec, w, target, latest())
		case <-changed:
		case <-tick:
			tick = g.cfg.Clock.After(g.cfg.ProgressEvery)
			progress(p, started)
		}
	}
}

// settle pauses for approvals.settle after an activation granted while
// the call waited: PIM reports Provisioned before every service honours
// the role, and an upstream that checks it at once would refuse the call.
// A grant from the cache has had that time already.
func (g *Gate) settle(ctx context.Context) error {
	if g.approvals.Settle <= 0 {
		return nil
	}
	select {
	case <-g.cfg.Clock.After(g.approvals.Settle):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receipt hands the activation to the background and answers with what the
// user needs to get it approved and call again.
func (g *Gate) receipt(ctx context.Context, rec *audit.Record, w *grants.Waiter, target string, p grants.Progress) (proxy.Result, error) {
	if err := w.Background(); err != nil {
		w.Leave()
		return g.refuse(ctx, rec, fmt.Sprintf("refused: %s is not active yet (request %s) and %s: call again later", target, p.RequestID, err))
	}
	msg := fmt.Sprintf("Not run yet: %s is waiting for approval (request %s, status %s). %s Call this tool again once the request is approved.",
		target, p.RequestID, p.Status, approverHint)
	if p.RequestID == "" {
		msg = fmt.Sprintf("Not run yet: PIM has not yet answered the activation request for %s; it goes on in the background. Call this tool again in a minute.", target)
	}
	rec.Outcome, rec.Message = audit.OutcomeReceipt, msg
	g.write(ctx, rec)
	return proxy.ToolErrorResult(msg), nil
}

// waiting is the progress sentence for a call that waits for approval.
func waiting(target string, p grants.Progress, elapsed time.Duration) string {
	switch {
	case p.RequestID == "":
		return fmt.Sprintf("Requesting %s (%s).", target, elapsed)
	case strings.HasPrefix(p.Status, "Pending"):
		return fmt.Sprintf("Waiting for approval of %s (request %s, %s, %s). %s", target, p.RequestID, p.Status, elapsed, approverHint)
	}
	return fmt.Sprintf("%s: request %s is %s (%s).", target, p.RequestID, p.Status, elapsed)
}

// refusal explains why an activation did not give a grant.
func refusal(target, requestID string, err error) string {
	var re *pim.RefusedError
	if errors.As(err, &re) {
		return "refused: " + re.UserMessage() // names the role and the request
	}
	var nl *pim.NotLiveError
	if errors.As(err, &nl) {
		return "refused: " + nl.UserMessage() // likewise
	}
	msg := fmt.Sprintf("refused: %s was not activated: %s", target, pim.UserMessage(err))
	if requestID != "" {
		msg += fmt.Sprintf(" (PIM request %s)", requestID)
	}
	return msg
}

// stepUp passes a claims challenge that the caller's own sign-in must
// meet (on-behalf-of activation) to the HTTP client as a 401, which a
// client handling Entra's claims challenges answers by signing its user
// in again; the refusal's text says the same to every other client.
func stepUp(ctx context.Context, err error, msg string) {
	var ce *pim.ChallengeError
	if errors.As(err, &ce) {
		authn.RequireClaims(ctx, ce.ClientClaims(), msg)
	}
}

// identify returns the caller's principal and the role's definition id, or
// why they are not to be had. The principal is the call's own when the HTTP
// front authenticated it, else the Activator's. Both are asked of the
// Activator once and then remembered, so that a call on a cached grant
// costs no lookup.
func (g *Gate) identify(ctx context.Context, c *proxy.Call, d policy.Decision, wait time.Duration) (principal, roleID, refusal string) {
	p, havePrincipal := g.principal.Load().(string)
	if c.Principal != "" {
		if !pim.IsGUID(c.Principal) {
			return "", "", "refused: cannot tell who is calling: " + pim.UserMessage(fmt.Errorf("%w: got %q", pim.ErrInvalidPrincipal, c.Principal))
		}
		p, havePrincipal = strings.ToLower(c.Principal), true
	}
	id, haveRole := g.roleIDs.Load(resolveKey{d.Kind, d.Role})
	if havePrincipal && haveRole {
		return p, id.(string), ""
	}
	// Signing in and resolving the role happen before the activation, whose
	// lifetime bounds everything after; bound them by the user's patience.
	ctx, cancel := context.WithTimeout(ctx, lookupBound(wait))
	defer cancel()
	if !havePrincipal {
		var err error
		p, err = g.cfg.Activator.Principal(ctx)
		if err == nil && !pim.IsGUID(p) {
			err = fmt.Errorf("%w: got %q", pim.ErrInvalidPrincipal, p)
		}
		if err != nil {
			return "", "", "refused: cannot tell who is calling: " + pim.UserMessage(err)
		}
		g.principal.Store(p)
	}
	if !haveRole {
		rid, err := g.cfg.Activator.Resolve(ctx, d.Target)
		if err != nil {
			return p, "", fmt.Sprintf("refused: %s (%s): %s", d.Target, d.Rule, pim.UserMessage(err))
		}
		g.roleIDs.Store(resolveKey{d.Kind, d.Role}, rid)
		id = rid
	}
	return p, id.(string), ""
}

// resolveKey is what a resolved id is remembered under: a group and a
// directory role may share a name.
type resolveKey struct {
	kind policy.Kind
	name string
}

// grantKey is the grant cache's key for principal's grant of d's target,
// resolved to id: one per user, kind, target and scope, so that no grant
// stands for another user, another kind, another scope or another access.
func grantKey(principal string, t policy.Target, id string) grants.Key {
	k := grants.Key{Principal: principal, Kind: t.Kind.String(), RoleID: id, Scope: directoryScope}
	switch t.Kind {
	case policy.KindGroup:
		k.Scope = string(t.Access)
	case policy.KindAzureRole:
		k.Scope = t.Scope
	}
	return k
}

// keyTarget is the resolved target a grant key stands for.
func keyTarget(k grants.Key) policy.Target {
	t := policy.Target{Role: k.RoleID}
	switch k.Kind {
	case policy.KindGroup.String():
		t.Kind, t.Access = policy.KindGroup, policy.Access(k.Scope)
	case policy.KindAzureRole.String():
		t.Kind, t.Scope = policy.KindAzureRole, k.Scope
	}
	return t
}

// waitFor is how long a call may wait for approval before it is answered
// with a receipt: as long as its task lives when it runs as one (the
// client polls it, so no client clock runs out); else the policy's wait
// when it sets one, else a little less than the calling client waits before
// it gives up on its own, so that the user sees the receipt rather than a
// timeout.
func waitFor(ap policy.Approvals, c *proxy.Call) time.Duration {
	switch {
	case c.Wait > 0:
		return c.Wait
	case ap.WaitSet:
		return ap.Wait
	}
	return clients.Lookup(c.Client.Name).Wait
}

// lookupBound is how long signing in and resolving a role may take: the
// wait, but never less than requestIDGrace, so that `wait: 0` still leaves
// Graph time to answer.
func lookupBound(wait time.Duration) time.Duration {
	return max(wait, requestIDGrace)
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
