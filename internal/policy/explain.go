package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Explanation is Decide's answer with the reasoning shown: the rules tried
// before the deciding one and why each was passed over.
type Explanation struct {
	Decision Decision
	Tried    []Step
}

// Step is one rule or alternative that was tried and did not decide.
type Step struct {
	Rule    string // file:line
	Pattern string
	Why     string
}

// Explain decides like Decide, by walking every rule in file order instead
// of using the index, and records what it passed over. It is for humans
// (mcp-gate explain) and for checking Decide, not for the call path.
func (p *Policy) Explain(tool string, args map[string]any) Explanation {
	if p == nil {
		return Explanation{Decision: p.Decide(tool, args)}
	}
	var ex Explanation
	for i := range p.entries {
		e := &p.entries[i]
		if !match(e.pattern, tool) {
			ex.Tried = append(ex.Tried, Step{Rule: e.loc, Pattern: e.pattern, Why: "pattern does not match"})
			continue
		}
		for _, a := range e.alts {
			if why := a.unmet(args); why != "" {
				ex.Tried = append(ex.Tried, Step{Rule: a.decision.Rule, Pattern: e.pattern, Why: why})
				continue
			}
			ex.Decision = a.decision
			return ex
		}
		ex.Decision = e.noCondition
		return ex
	}
	ex.Decision = p.noMatch
	return ex
}

// unmet says which condition fails, or "" when all hold.
func (a *alt) unmet(args map[string]any) string {
	every := a.decision.Action == Allow
	for _, c := range a.when {
		if condHolds(c, args, every) {
			continue
		}
		vals := values(args, c.path, nil)
		switch {
		case len(vals) == 0:
			return fmt.Sprintf("when %s: argument missing", c.key)
		case every:
			for _, v := range vals {
				rs := readings(v)
				for _, r := range rs {
					switch {
					case match(c.glob, r):
					case r == rs[0]:
						return fmt.Sprintf("when %s: %q does not match %q", c.key, r, c.glob)
					default:
						return fmt.Sprintf("when %s: %q, read as %q, does not match %q (an allow needs every reading to)", c.key, rs[0], r, c.glob)
					}
				}
			}
			return fmt.Sprintf("when %s: %s do not all match %q", c.key, shown(vals), c.glob) // not reached: condHolds would have held
		default:
			return fmt.Sprintf("when %s: %s does not match %q", c.key, shown(vals), c.glob)
		}
	}
	return ""
}

// shown is the values a condition was tested on, for explain.
func shown(vals []any) string {
	qs := make([]string, len(vals))
	for i, v := range vals {
		qs[i] = strconv.Quote(readings(v)[0])
	}
	if len(qs) == 1 {
		return qs[0]
	}
	return "[" + strings.Join(qs, ", ") + "]"
}

// String renders the explanation the way `mcp-gate explain` prints it.
func (ex Explanation) String() string {
	var b strings.Builder
	d := ex.Decision
	fmt.Fprintf(&b, "decision: %s (%s)\n", d.Action, d.Reason)
	if d.Pattern != "" {
		fmt.Fprintf(&b, "rule:     %s  %q\n", d.Rule, d.Pattern)
	} else {
		fmt.Fprintf(&b, "rule:     none matched in %s (default deny)\n", d.Rule)
	}
	if d.Action == Activate {
		switch d.Kind {
		case KindGroup:
			fmt.Fprintf(&b, "group:    %s (PIM for Groups, %s)\n", d.Role, d.Access)
		case KindAzureRole:
			fmt.Fprintf(&b, "azureRole: %s (Azure resource role)\n", d.Role)
			fmt.Fprintf(&b, "scope:    %s\n", d.Scope)
		default:
			fmt.Fprintf(&b, "role:     %s\n", d.Role)
		}
		fmt.Fprintf(&b, "grant:    %s\n", d.Grant)
		fmt.Fprintf(&b, "justification: %s\n", textOrRequired(d.JustificationRequired, d.Justification, ArgJustification))
		if d.TicketRequired || d.Ticket != "" {
			fmt.Fprintf(&b, "ticket:   %s (system %s)\n", textOrRequired(d.TicketRequired, d.Ticket, ArgTicket), d.TicketSystem)
		}
		if d.Confirm {
			b.WriteString("confirm:  the user confirms each call before anything is requested or forwarded\n")
		}
	}
	if len(ex.Tried) == 0 {
		b.WriteString("tried before: none\n")
		return b.String()
	}
	b.WriteString("tried before:\n")
	for _, s := range ex.Tried {
		fmt.Fprintf(&b, "  %s  %q: %s\n", s.Rule, s.Pattern, s.Why)
	}
	return b.String()
}

func textOrRequired(required bool, text, arg string) string {
	if required {
		return fmt.Sprintf("required (asked of the user, or the call's %q argument when its client cannot ask)", arg)
	}
	return fmt.Sprintf("%q", text)
}
