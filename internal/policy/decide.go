package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Action is what happens to a call. The zero value is Deny, so a
// Decision that was never filled in refuses the call.
type Action int

const (
	Deny     Action = iota // refuse the call
	Allow                  // forward the call
	Activate               // forward once Role is active for the caller
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Activate:
		return "activate"
	default:
		return "deny"
	}
}

// Reason is a fixed code saying why a decision was made, for logs and
// audit records.
type Reason string

const (
	ReasonRuleAllow    Reason = "rule_allow"       // a rule says allow
	ReasonRuleDeny     Reason = "rule_deny"        // a rule says deny
	ReasonRoleRequired Reason = "role_required"    // a rule needs a PIM role
	ReasonNoCondition  Reason = "no_condition_met" // a pattern matched but no alternative's when did
	ReasonNoMatch      Reason = "no_match"         // no pattern matched: denied by default
	ReasonNoPolicy     Reason = "no_policy"        // there is no policy at all
)

// Decision is the outcome of Decide. It is a plain value: keep it for the
// whole call even if the policy is reloaded meanwhile.
type Decision struct {
	Action  Action
	Reason  Reason
	Rule    string // "policies.yaml:12", the deciding rule; just "policies.yaml" when nothing matched
	Pattern string // the tools: key that matched, empty when nothing matched

	// Set for Activate only.
	Role                  string
	Grant                 time.Duration // the rule's grant, else approvals.defaultGrant
	Justification         string        // template text; empty when JustificationRequired
	JustificationRequired bool          // the call must carry a "justification" argument
	Ticket                string        // template text, empty when none or TicketRequired
	TicketRequired        bool          // the call must carry a "ticket" argument
	TicketSystem          string

	justification, ticket *template.Template
}

// Why is a sentence for a tool error or a log line, naming the rule.
func (d Decision) Why() string {
	switch d.Reason {
	case ReasonRuleAllow:
		return "allowed by " + d.Rule
	case ReasonRuleDeny:
		return "denied by " + d.Rule
	case ReasonRoleRequired:
		return fmt.Sprintf("needs PIM role %q (%s)", d.Role, d.Rule)
	case ReasonNoCondition:
		return "denied by " + d.Rule + ": the call's arguments meet none of the rule's conditions"
	case ReasonNoMatch:
		return "denied: no rule in " + d.Rule + " matches this tool"
	default:
		return "denied: no policy loaded"
	}
}

// Arguments the caller passes to satisfy `justification: required` and
// `ticket: required`.
const (
	ArgJustification = "justification"
	ArgTicket        = "ticket"
)

// Errors from Justify, to be shown to the user as the reason the call was
// refused.
var (
	ErrJustificationRequired = errors.New(`this tool needs a justification: pass a non-empty "justification" argument`)
	ErrTicketRequired        = errors.New(`this tool needs a ticket number: pass a non-empty "ticket" argument`)
)

// Call is the tool call a justification or ticket is written for.
type Call struct {
	Tool     string
	Upstream string
	Client   string // the client's name and version, as it introduced itself
	TraceID  string // the gate's id for the call, also in its audit record
	Args     map[string]any
}

// Justify returns the justification and ticket number to send with the
// PIM activation of an Activate decision: the call's own arguments where the
// rule says required, else the rule's templates rendered for this call. An
// empty ticket means none.
func (d Decision) Justify(c Call) (justification, ticket string, err error) {
	data := templateData{Call: c, Role: d.Role, Grant: d.Grant.String()}
	justification, err = render(d.JustificationRequired, d.justification, ArgJustification, ErrJustificationRequired, data)
	if err != nil {
		return "", "", err
	}
	ticket, err = render(d.TicketRequired, d.ticket, ArgTicket, ErrTicketRequired, data)
	if err != nil {
		return "", "", err
	}
	return justification, ticket, nil
}

func render(required bool, t *template.Template, arg string, missing error, data templateData) (string, error) {
	if required {
		s, _ := data.Args[arg].(string)
		if s = strings.TrimSpace(s); s == "" {
			return "", missing
		}
		return s, nil
	}
	if t == nil {
		return "", nil
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s: %w", arg, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// templateData is what justification and ticket templates see:
// {{.Tool}}, {{.Upstream}}, {{.Client}}, {{.TraceID}}, {{.Role}},
// {{.Grant}}, {{.Args}}, {{.ArgsSummary}}, and {{.Arg "a.b"}} for one
// argument's string form (empty when missing).
type templateData struct {
	Call
	Role  string
	Grant string
}

// summaryValueMax is how many characters of one argument ArgsSummary shows.
const summaryValueMax = 32

// secretName matches argument names whose values ArgsSummary never shows.
var secretName = regexp.MustCompile(`(?i)pass|secret|token|key|credential|auth|cookie|session`)

// ArgsSummary lists the top-level arguments as name=value, sorted by name,
// for approvers: long values are cut short, nested ones elided, and values
// of arguments whose names suggest a secret are not shown.
func (d templateData) ArgsSummary() string {
	names := slices.Sorted(maps.Keys(d.Args))
	parts := make([]string, 0, len(names))
	for _, name := range names {
		var v string
		switch x := d.Args[name].(type) {
		case map[string]any:
			v = "{…}"
		case []any:
			v = "[…]"
		default:
			v, _ = argString(d.Args, []string{name})
			if r := []rune(v); len(r) > summaryValueMax {
				v = string(r[:summaryValueMax-1]) + "…"
			}
			if _, ok := x.(string); ok {
				v = strconv.Quote(v)
			}
			if secretName.MatchString(name) {
				v = "***"
			}
		}
		parts = append(parts, name+"="+v)
	}
	return strings.Join(parts, ", ")
}

// Arg returns the string form of the argument at a dotted path, or "".
func (d templateData) Arg(path string) string {
	s, _ := argString(d.Args, strings.Split(path, "."))
	return s
}

// entry is one key of tools: with its alternatives.
type entry struct {
	pattern string
	must    string // the pattern's longest literal run: a cheap first test
	loc     string // file:line of the key
	line    int
	col     int
	alts    []alt
	hasWhen bool

	noCondition Decision // when no alternative's conditions hold
	hidden      bool     // no alternative can allow or activate
	role        string   // first role among the alternatives
}

// alt is one alternative of an entry: conditions and the decision they
// lead to, precomputed so Decide only copies it.
type alt struct {
	when     []cond
	decision Decision
}

// cond is one `when` condition: an argument path and a glob on its value.
type cond struct {
	key  string   // as written, for explain
	path []string // key split at dots
	glob string
}

// Decide decides a call to tool with its decoded JSON arguments. It does no
// I/O and, when the matching rule has no `when`, no allocation; args may be
// nil then (see NeedsArgs). A nil Policy denies everything.
func (p *Policy) Decide(tool string, args map[string]any) Decision {
	if p == nil {
		return Decision{Reason: ReasonNoPolicy}
	}
	i := p.lookup(tool)
	if i < 0 {
		return p.noMatch
	}
	e := &p.entries[i]
	for k := range e.alts {
		if condsHold(e.alts[k].when, args) {
			return e.alts[k].decision
		}
	}
	return e.noCondition
}

// NeedsArgs reports whether deciding tool looks at the call's arguments.
// When false, Decide may be given nil and the arguments need not be
// decoded. Justify always needs them.
func (p *Policy) NeedsArgs(tool string) bool {
	if p == nil {
		return false
	}
	i := p.lookup(tool)
	return i >= 0 && p.entries[i].hasWhen
}

// Visibility says how tools/list should show tool: hidden when no call to
// it could ever be allowed or activated; otherwise role is the first role a
// call may need ("" when none), for a note in the tool's description.
func (p *Policy) Visibility(tool string) (hidden bool, role string) {
	if p == nil {
		return true, ""
	}
	i := p.lookup(tool)
	if i < 0 {
		return true, ""
	}
	return p.entries[i].hidden, p.entries[i].role
}

// lookup returns the index of the first entry whose pattern matches tool,
// or -1. Exact names come from a map; only globs that could precede the
// exact entry are tried, so the first match in file order still wins.
func (p *Policy) lookup(tool string) int {
	limit := len(p.entries)
	if i, ok := p.exact[tool]; ok {
		limit = i
	}
	matches := func(i int) bool {
		e := &p.entries[i]
		return strings.Contains(tool, e.must) && match(e.pattern, tool)
	}
	if p.prefixGlobs != nil {
		limit = p.prefixGlobs.first(tool, false, limit, matches)
		limit = p.suffixGlobs.first(tool, true, limit, matches)
	}
	if limit == len(p.entries) {
		return -1
	}
	return limit
}

func condsHold(conds []cond, args map[string]any) bool {
	for _, c := range conds {
		if !c.holds(args) {
			return false
		}
	}
	return true
}

func (c cond) holds(args map[string]any) bool {
	s, ok := argString(args, c.path)
	return ok && match(c.glob, s)
}

// argString finds the value at path in args and returns its string form:
// strings as they are, numbers and booleans written plainly (42, 1.5,
// true), objects and arrays as compact JSON. A missing value or JSON null
// reports false. A path element that is a number indexes an array.
func argString(args map[string]any, path []string) (string, bool) {
	var v any = args
	for _, key := range path {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[key]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return "", false
			}
			v = c[i]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}
