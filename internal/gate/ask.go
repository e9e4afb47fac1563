package gate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/callargs"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// The person, not the model: a rule's `justification: required` and
// `ticket: required` are asked of the user through the client
// (elicitation) when it can ask, and `confirm: true` has the user confirm
// the exact call. A client that cannot ask gets the two values from the
// call's arguments instead, which tools/list offers and which are taken out
// of the arguments before they are forwarded (see gateArgs).

// askConfirm is the box the user ticks to confirm a call; the form's
// other fields are named policy.ArgJustification and policy.ArgTicket.
const askConfirm = "confirm"

// maxTicket is the longest ticket number the gate sends PIM.
const maxTicket = 100

// maxAskWait bounds how long a call waits for the user to answer a form:
// a client that neither answers nor cancels must not hold the call forever.
const maxAskWait = 10 * time.Minute

// ArgDescription describes the arguments tools/list adds for a client that
// cannot ask its user.
const ArgDescription = "for the PIM request; not sent to the tool"

// Asks is the proxy's Options.Asks: the arguments tools/list adds to tool's
// inputSchema for clients that cannot ask their user, in the order given.
func (g *Gate) Asks(tool string) []proxy.AskArg {
	just, ticket := g.cfg.Policy().Asks(tool)
	var out []proxy.AskArg
	if just {
		out = append(out, proxy.AskArg{Name: policy.ArgJustification, Description: "Why this call needs its PIM role, " + ArgDescription})
	}
	if ticket {
		out = append(out, proxy.AskArg{Name: policy.ArgTicket, Description: "Ticket number, " + ArgDescription})
	}
	return out
}

// needed is the values d requires of the user or, failing that, of the
// call's arguments.
func needed(d policy.Decision) []string {
	var names []string
	if d.JustificationRequired {
		names = append(names, policy.ArgJustification)
	}
	if d.TicketRequired {
		names = append(names, policy.ArgTicket)
	}
	return names
}

// gateArgs takes out of the arguments of a call whose client cannot ask
// its user the values d requires for the PIM request, unless the tool
// declares them itself, and returns the arguments to forward. The policy
// decides again on them: a rule that held only because of those values
// must not pass on arguments it never saw, so the call is refused (refusal
// non-empty) unless the same rule decides alike.
func gateArgs(pol *policy.Policy, c *proxy.Call, d policy.Decision, args *callargs.Args) (*callargs.Args, string) {
	if d.Action != policy.Activate || c.Elicit != nil {
		return args, ""
	}
	var names []string
	for _, n := range needed(d) {
		if !slices.ContainsFunc(c.Declared, func(k string) bool { return callargs.Fold(k) == callargs.Fold(n) }) {
			names = append(names, n)
		}
	}
	rest, removed := args.Without(names...)
	if len(removed) == 0 {
		return args, ""
	}
	if d2 := pol.Decide(c.Tool, rest.Object()); d2.Rule != d.Rule || d2.Action != d.Action || d2.Target != d.Target {
		return nil, fmt.Sprintf("refused: the rule for this call (%s) depends on the %s argument, which is for the PIM request and is not sent to the tool; the arguments sent must meet the rule on their own", d.Rule, strings.Join(removed, " and "))
	}
	return rest, ""
}

// ask puts the form to the user: confirm (the exact call) and names (the
// values the rule requires), and returns the values given, by name, and
// what the user supplied, for the audit record. refusal is non-empty when
// the call must not go on: the user declined or cancelled, gave nothing, or
// could not be asked. err is the client's cancellation.
func (g *Gate) ask(ctx context.Context, c *proxy.Call, d policy.Decision, args map[string]any, confirm bool, names []string) (given map[string]string, elicited []string, refusal string, err error) {
	what := fmt.Sprintf("%s (%s)", d.Target, d.Rule)
	if c.Elicit == nil {
		// Only confirm gets here without elicitation: the values have
		// come from the arguments.
		return nil, nil, fmt.Sprintf("refused: %s has the user confirm each call, and this client cannot ask its user (it declared no form elicitation); call the tool from a client that supports MCP elicitation", what), nil
	}
	summary := policy.ArgsSummary(args)
	if summary == "" {
		summary = "none"
	}
	var msg strings.Builder
	if confirm {
		fmt.Fprintf(&msg, "Confirm this call: tool %s on upstream %s with arguments %s, which needs %s. Accept only if you want this exact call run.", c.Tool, c.Upstream, summary, d.Target)
	} else {
		fmt.Fprintf(&msg, "Tool %s on upstream %s with arguments %s needs %s.", c.Tool, c.Upstream, summary, d.Target)
	}
	props := map[string]any{}
	required := []string{}
	if confirm {
		props[askConfirm] = map[string]any{"type": "boolean", "title": "Run this call", "description": "Run " + c.Tool + " with the arguments shown"}
		required = append(required, askConfirm)
	}
	for _, n := range names {
		switch n {
		case policy.ArgJustification:
			msg.WriteString(" Give the justification for the PIM request; approvers read it.")
			props[n] = map[string]any{"type": "string", "title": "Justification", "description": "Why this call needs " + d.Target.String(), "minLength": 1, "maxLength": maxJustification}
		case policy.ArgTicket:
			msg.WriteString(" Give the ticket number for the PIM request.")
			props[n] = map[string]any{"type": "string", "title": "Ticket number", "description": "The ticket this call belongs to", "minLength": 1, "maxLength": maxTicket}
		}
		required = append(required, n)
	}
	actx, cancel := context.WithTimeout(ctx, maxAskWait)
	defer cancel()
	res, err := c.Elicit(actx, mcp.ElicitationParams{
		Mode:            mcp.ElicitationModeForm,
		Message:         msg.String(),
		RequestedSchema: map[string]any{"type": "object", "properties": props, "required": required},
	})
	switch {
	case ctx.Err() != nil:
		return nil, nil, "", ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil, fmt.Sprintf("refused: the user did not answer within %s; nothing was requested or run", maxAskWait), nil
	case err != nil:
		return nil, nil, fmt.Sprintf("refused: %s needs an answer from the user, and asking failed: %v; nothing was requested or run", what, err), nil
	}
	switch res.Action {
	case mcp.ElicitationResponseActionAccept:
	case mcp.ElicitationResponseActionDecline:
		return nil, nil, fmt.Sprintf("refused: the user declined %s for %s; nothing was requested or run", verb(confirm), c.Tool), nil
	default:
		return nil, nil, fmt.Sprintf("refused: the user cancelled %s for %s; nothing was requested or run", verb(confirm), c.Tool), nil
	}
	content, _ := res.Content.(map[string]any)
	if confirm {
		if ok, _ := content[askConfirm].(bool); !ok {
			return nil, nil, fmt.Sprintf("refused: the user did not confirm %s; nothing was requested or run", c.Tool), nil
		}
		elicited = append(elicited, askConfirm)
	}
	given = map[string]string{}
	for _, n := range names {
		s, _ := content[n].(string)
		s = strings.TrimSpace(s)
		limit := maxJustification
		if n == policy.ArgTicket {
			limit = maxTicket
		}
		switch {
		case s == "":
			return nil, nil, fmt.Sprintf("refused: the user gave no %s for %s; nothing was requested or run", n, c.Tool), nil
		case utf8.RuneCountInString(s) > limit:
			return nil, nil, fmt.Sprintf("refused: the %s the user gave is longer than %d characters; nothing was requested or run", n, limit), nil
		}
		given[n] = s
		elicited = append(elicited, n)
	}
	return given, elicited, "", nil
}

// verb names what the form asked, for a refusal.
func verb(confirm bool) string {
	if confirm {
		return "to confirm the call"
	}
	return "to give what the PIM request needs"
}

// markElicited notes in the audit record what the user gave.
func markElicited(rec *audit.Record, names []string) {
	for _, n := range names {
		if !slices.Contains(rec.Elicited, n) {
			rec.Elicited = append(rec.Elicited, n)
		}
	}
}
