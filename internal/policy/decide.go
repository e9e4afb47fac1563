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
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
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
	Target                              // what PIM must activate: kind, role, scope, access
	Grant                 time.Duration // the rule's grant, else approvals.defaultGrant
	Justification         string        // template text; empty when JustificationRequired
	JustificationRequired bool          // the call must carry a "justification" argument
	Ticket                string        // template text, empty when none or TicketRequired
	TicketRequired        bool          // the call must carry a "ticket" argument
	TicketSystem          string
	// Confirm: the user confirms this very call (through elicitation)
	// before anything is requested or forwarded, grant cached or not.
	Confirm bool

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
		return fmt.Sprintf("needs %s (%s)", d.Target, d.Rule)
	case ReasonNoCondition:
		return "denied by " + d.Rule + ": the call's arguments meet none of the rule's conditions"
	case ReasonNoMatch:
		return "denied: no rule in " + d.Rule + " matches this tool"
	default:
		return "denied: no policy loaded"
	}
}

// Arguments the caller passes to satisfy `justification: required` and
// `ticket: required` when its client cannot ask the user for them.
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
	// Given holds what the user answered (elicitation) for a required
	// justification or ticket, by ArgJustification and ArgTicket: it
	// stands in for the argument of that name, which is then not read.
	Given map[string]string
}

// Asks reports whether some alternative of the rule for tool requires a
// justification or a ticket, which tools/list offers as arguments to a
// client that cannot ask its user.
func (p *Policy) Asks(tool string) (justification, ticket bool) {
	if p == nil {
		return false, false
	}
	i := p.lookup(tool)
	if i < 0 {
		return false, false
	}
	for _, a := range p.entries[i].alts {
		justification = justification || a.decision.JustificationRequired
		ticket = ticket || a.decision.TicketRequired
	}
	return justification, ticket
}

// ArgsSummary is the arguments as {{.ArgsSummary}} shows them to
// approvers: safe to show a person (see templateData.ArgsSummary).
func ArgsSummary(args map[string]any) string {
	return templateData{Call: Call{Args: args}}.ArgsSummary()
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
	if d.JustificationRequired {
		// The caller's words come last and quoted, after what the gate
		// knows, so they cannot pose as the tool, role or trace id.
		justification = fmt.Sprintf("%s needs %s (mcp-gate trace %s), reason given: %s", c.Tool, d.Role, c.TraceID, quoteCut(justification, reasonMax))
	}
	ticket, err = render(d.TicketRequired, d.ticket, ArgTicket, ErrTicketRequired, data)
	if err != nil {
		return "", "", err
	}
	return justification, ticket, nil
}

func render(required bool, t *template.Template, arg string, missing error, data templateData) (string, error) {
	if required {
		s, given := data.Given[arg]
		if !given {
			v, _ := lookupKey(data.Args, arg)
			s, _ = v.(string)
		}
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

// ArgsSummary's limits, in characters. PIM takes 500 characters of
// justification; the summary keeps within summaryMax of them so that the
// text around it (tool, role and trace id first) survives the gate's cut.
const (
	summaryMax      = 300
	summaryNameMax  = 40  // a name as shown, quotes and escapes included
	summaryValueMax = 40  // a value as shown, likewise
	reasonMax       = 400 // a required justification as quoted after the facts
)

// secretName matches argument names whose values ArgsSummary never shows.
var secretName = regexp.MustCompile(`(?i)pass|secret|token|key|credential|auth|cookie|session`)

// ArgsSummary lists the top-level arguments for approvers, sorted by name,
// as "name"=value: names and string values in JSON string syntax, with
// quotes, control, format (bidi) and other invisible characters escaped,
// so the caller cannot make one argument look like two or hide one; each
// name and value is cut on its own, nested values are elided as {…} or
// […], and values of arguments whose names suggest a secret show as ***.
// Arguments that do not fit in summaryMax characters are counted, never
// dropped silently: "(+3 more arguments)".
func (d templateData) ArgsSummary() string {
	names := slices.Sorted(maps.Keys(d.Args))
	var b strings.Builder
	used := 0 // characters in b
	for i, name := range names {
		var v string
		switch x := d.Args[name].(type) {
		case map[string]any:
			v = "{…}"
		case []any:
			v = "[…]"
		case string:
			v = quoteCut(x, summaryValueMax)
		default:
			s, _ := argString(d.Args, []string{name})
			if s == "" {
				s = "null"
			}
			v = cut(s, summaryValueMax)
		}
		if secretName.MatchString(name) {
			v = "***"
		}
		entry := quoteCut(name, summaryNameMax) + "=" + v
		if b.Len() > 0 {
			entry = ", " + entry
		}
		tail := "" // what must still fit after this entry
		if left := len(names) - i - 1; left > 0 {
			tail = ", " + moreArguments(left)
		}
		if n := utf8.RuneCountInString(entry + tail); used+n > summaryMax {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(moreArguments(len(names) - i))
			break
		}
		b.WriteString(entry)
		used += utf8.RuneCountInString(entry)
	}
	return b.String()
}

// moreArguments says how many arguments a summary leaves out.
func moreArguments(n int) string {
	if n == 1 {
		return "(+1 more argument)"
	}
	return fmt.Sprintf("(+%d more arguments)", n)
}

// quoteCut writes s as a JSON string of at most n characters, quotes
// included, escaping every character an approver could not see or could
// misread; a cut string ends in … inside its quotes.
func quoteCut(s string, n int) string {
	var b strings.Builder
	b.WriteByte('"')
	used := 2 // the quotes
	for i, r := range s {
		esc := escapeRune(r)
		// Room for this character, and for the ellipsis if more follow.
		need := utf8.RuneCountInString(esc)
		if i+utf8.RuneLen(r) < len(s) {
			need++
		}
		if used+need > n {
			b.WriteString("…")
			break
		}
		b.WriteString(esc)
		used += utf8.RuneCountInString(esc)
	}
	b.WriteByte('"')
	return b.String()
}

// escapeRune is r in a JSON string: escaped when it is a quote, a
// backslash, or not a printable character (controls, format characters
// such as bidi overrides, line separators, non-ASCII spaces).
func escapeRune(r rune) string {
	switch r {
	case '"':
		return `\"`
	case '\\':
		return `\\`
	case '\n':
		return `\n`
	case '\t':
		return `\t`
	case '\r':
		return `\r`
	}
	if unicode.IsPrint(r) { // not controls, format characters, separators or spaces other than ' '
		return string(r)
	}
	if r > 0xFFFF {
		hi, lo := utf16.EncodeRune(r)
		return fmt.Sprintf(`\u%04x\u%04x`, hi, lo)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// cut shortens s to at most n characters, ending it with … when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
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

	noCondition Decision // when no alternative's conditions hold
	hidden      bool     // no alternative can allow or activate
	target      Target   // what the first activating alternative needs
}

// alt is one alternative of an entry: conditions and the decision they
// lead to, precomputed so Decide only copies it.
type alt struct {
	when     []cond
	decision Decision
}

// cond is one `when` condition: an argument path and a glob on its value.
type cond struct {
	key      string   // as written, for explain
	path     []string // key split at dots
	glob     string
	globFold string // glob NFKC-normalised and case-folded, for folded readings
}

// Decide decides a call to tool with its arguments as callargs.Parse
// decoded them (nil stands for none). It does no I/O and, when the
// matching rule has no `when`, no allocation. A nil Policy denies
// everything.
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
		if e.alts[k].holds(args) {
			return e.alts[k].decision
		}
	}
	return e.noCondition
}

// Visibility says how tools/list should show tool: hidden when no call to
// it could ever be allowed or activated; otherwise needs is what the first
// activating alternative asks PIM for (its Role is "" when none), for a note
// in the tool's description.
func (p *Policy) Visibility(tool string) (hidden bool, needs Target) {
	if p == nil {
		return true, Target{}
	}
	i := p.lookup(tool)
	if i < 0 {
		return true, Target{}
	}
	return p.entries[i].hidden, p.entries[i].target
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

// holds reports whether all of a's conditions hold, read as readings.go
// says: strictly for an allow alternative, broadly for the others.
func (a *alt) holds(args map[string]any) bool {
	every := a.decision.Action == Allow
	for _, c := range a.when {
		if !condHolds(c, args, every) {
			return false
		}
	}
	return true
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
			if v, ok = lookupKey(c, key); !ok {
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
