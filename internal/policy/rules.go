package policy

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
	"gopkg.in/yaml.v3"

	"github.com/mcp-gate/mcp-gate/internal/callargs"
)

// altSrc is one alternative as written; finish turns it into an alt once
// approvals: (which may come later in the file) is known.
type altSrc struct {
	loc     string
	node    *yaml.Node
	action  Action
	target  Target
	grant   time.Duration
	when    []cond
	just    textSpec
	ticket  textSpec
	confirm bool
}

// textSpec is a justification or ticket setting: the keyword required, or
// a template.
type textSpec struct {
	set      bool
	required bool
	text     string
	tmpl     *template.Template
}

const keywordRequired = "required"

func (ps *parser) tools(n *yaml.Node) {
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		ps.warnf(n, "tools: empty; every call will be denied")
	}
	ps.pairs(n, "tools", func(k, v *yaml.Node) {
		pat := k.Value
		where := fmt.Sprintf("tools[%q]", pat)
		switch {
		case pat == "":
			ps.errorf(k, "tools: empty pattern; write a tool name or a glob such as db__*")
		case strings.IndexFunc(pat, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			ps.errorf(k, "%s: the pattern contains white space, which tool names never do", where)
		}
		loc := fmt.Sprintf("%s:%d", ps.base, k.Line)
		ps.p.entries = append(ps.p.entries, entry{pattern: pat, must: longestLiteral(pat), loc: loc, line: k.Line, col: k.Column})
		ps.srcs = append(ps.srcs, ps.rule(v, where, loc))
	})
}

// rule reads the value of a tools: entry: one alternative, or a list.
func (ps *parser) rule(n *yaml.Node, where, loc string) []altSrc {
	if n.Kind != yaml.SequenceNode {
		a, ok := ps.alternative(n, where, loc)
		if !ok {
			return nil
		}
		return []altSrc{a}
	}
	if len(n.Content) == 0 {
		ps.errorf(n, "%s: empty list; give at least one alternative", where)
		return nil
	}
	var alts []altSrc
	always := -1  // index of the first alternative without conditions
	guarded := -1 // index of the first conditioned role or deny
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", where, i)
		if item.Kind == yaml.SequenceNode {
			ps.errorf(item, "%s: an alternative is allow, deny or a mapping; lists do not nest", at)
			continue
		}
		a, ok := ps.alternative(item, at, fmt.Sprintf("%s:%d", ps.base, item.Line))
		if !ok {
			continue
		}
		switch {
		case always >= 0:
			ps.warnf(item, "%s: unreachable: alternative %d (line %d) has no when and always applies first", at, always, n.Content[always].Line)
		case len(a.when) > 0 && a.action != Allow && guarded < 0:
			guarded = i
		case len(a.when) == 0 && a.action == Allow && guarded >= 0:
			ps.warnf(item, "%s: a deny-list: every call that dodges the conditions of alternative %d (line %d) is allowed, and the caller picks the arguments they test; write an allow-list instead: {when: {...}, action: allow} for what is safe, then the role for the rest", at, guarded, n.Content[guarded].Line)
		}
		if always < 0 && len(a.when) == 0 {
			always = i
		}
		alts = append(alts, a)
	}
	return alts
}

func (ps *parser) alternative(n *yaml.Node, where, loc string) (altSrc, bool) {
	a := altSrc{loc: loc, node: n}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == "allow":
		a.action = Allow
		return a, true
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == "deny":
		a.action = Deny
		return a, true
	case n.Kind != yaml.MappingNode:
		ps.errorf(n, "%s: want allow, deny, a mapping {role | group | azureRole, grant, when, justification, ticket, confirm}, {when, action: allow|deny} or a list of them, got %s", where, describe(n))
		return a, false
	}
	a.action = Activate
	var action *yaml.Node
	var targetOnly []string // keys that only go with a target (role, group, azureRole)
	var named []*yaml.Node  // the target keys given, to report each extra one
	var accessNode, scopeNode *yaml.Node
	ok := true
	ps.fields(n, where, ruleKeys, func(key string, k, v *yaml.Node) {
		at := join(where, key)
		var good bool
		switch key {
		case "action":
			action = v
			var s string
			if s, good = ps.oneOf(v, at, []string{"allow", "deny"}); good && s == "allow" {
				a.action = Allow
			} else if good {
				a.action = Deny
			}
		case "role":
			named = append(named, k)
			a.target.Kind = KindRole
			a.target.Role, good = ps.name(v, at, "a PIM role display name or role definition id", "role definition id")
		case "group":
			named = append(named, k)
			a.target.Kind = KindGroup
			a.target.Role, good = ps.name(v, at, "a group display name or object id", "group object id")
		case "azureRole":
			named = append(named, k)
			a.target.Kind = KindAzureRole
			a.target.Role, good = ps.name(v, at, "an Azure role name (e.g. Contributor) or role definition id", "role definition id")
		case "access":
			accessNode = k
			var s string
			s, good = ps.oneOf(v, at, accessValues)
			a.target.Access = Access(s)
		case "scope":
			scopeNode = k
			a.target.Scope, good = ps.scope(v, at)
		case "grant":
			targetOnly = append(targetOnly, key)
			a.grant, good = ps.duration(v, at, false)
		case "when":
			a.when, good = ps.when(v, at)
		case "justification":
			targetOnly = append(targetOnly, key)
			a.just, good = ps.text(v, at)
		case "ticket":
			targetOnly = append(targetOnly, key)
			a.ticket, good = ps.text(v, at)
		case "confirm":
			targetOnly = append(targetOnly, key)
			a.confirm, good = ps.boolean(v, at)
		}
		ok = ok && good
	})
	switch {
	case len(named) > 1:
		for _, k := range named[1:] {
			ps.errorf(k, "%s: %s and %s exclude each other: a rule activates exactly one of role (a directory role), group (PIM for Groups) or azureRole (an Azure role at a scope)", where, named[0].Value, k.Value)
		}
		return a, false
	case action != nil && len(named) > 0:
		ps.errorf(action, "%s: action and %s exclude each other: a mapping with %s activates it; action: allow or deny takes none", where, named[0].Value, named[0].Value)
		return a, false
	case action != nil && len(targetOnly) > 0:
		ps.errorf(action, "%s: %s only go with role, group or azureRole; action: %s takes just when", where, strings.Join(targetOnly, ", "), action.Value)
		return a, false
	case action == nil && len(named) == 0:
		ps.errorf(n, "%s: missing role; a rule mapping names what PIM activates for a call (role, group or azureRole), or is {when: {...}, action: allow|deny} (write allow or deny for a rule without conditions)", where)
		return a, false
	}
	if accessNode != nil && (action != nil || a.target.Kind != KindGroup) {
		ps.errorf(accessNode, "%s: access goes only with group (member or owner of a PIM for Groups group)", where)
		ok = false
	}
	if scopeNode != nil && (action != nil || a.target.Kind != KindAzureRole) {
		ps.errorf(scopeNode, "%s: scope goes only with azureRole (the Azure resource the role is activated on)", where)
		ok = false
	}
	switch {
	case action != nil:
	case a.target.Kind == KindGroup && a.target.Access == "":
		a.target.Access = AccessMember
	case a.target.Kind == KindAzureRole && scopeNode == nil:
		ps.errorf(named[0], "%s: azureRole needs a scope: the subscription, resource group or resource to activate it on, e.g. scope: /subscriptions/{id}/resourceGroups/{name}", where)
		ok = false
	}
	return a, ok
}

func (ps *parser) when(n *yaml.Node, where string) ([]cond, bool) {
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, "%s: want a mapping of argument path to glob, e.g. {repo: \"prod-*\"}, got %s", where, describe(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		ps.errorf(n, "%s: empty; give at least one argument condition, or remove when", where)
		return nil, false
	}
	var conds []cond
	ok := true
	ps.pairs(n, where, func(k, v *yaml.Node) {
		path := strings.Split(k.Value, ".")
		if slices.Contains(path, "") {
			ps.errorf(k, "%s: %q is not an argument path; use names joined by dots, e.g. repo or options.branch", where, k.Value)
			ok = false
			return
		}
		glob, good := ps.scalar(v, join(where, k.Value), "a glob such as \"prod-*\"")
		if !good {
			ok = false
			return
		}
		conds = append(conds, cond{key: k.Value, path: path, glob: glob, globFold: callargs.Fold(norm.NFKC.String(glob))})
	})
	return conds, ok
}

// text reads a justification or ticket: the keyword required or a
// text/template, checked now so a typo fails the file, not a call.
func (ps *parser) text(n *yaml.Node, where string) (textSpec, bool) {
	s, ok := ps.str(n, where, false)
	if !ok {
		return textSpec{}, false
	}
	switch strings.TrimSpace(s) {
	case "":
		ps.errorf(n, "%s: must not be empty; write required or a text such as \"{{.Tool}} via mcp-gate\"", where)
		return textSpec{}, false
	case keywordRequired:
		return textSpec{set: true, required: true}, true
	}
	if w := strings.Fields(s); len(w) == 1 && !strings.Contains(s, "{{") {
		if hint := suggest(w[0], []string{keywordRequired}); hint != "" {
			// A one-word text this close to the keyword is a typo: taken
			// literally, it would send "requried" to the approver instead
			// of asking the caller for a justification.
			ps.errorf(n, "%s: unknown keyword %q%s; write required, or a text of more than one word", where, w[0], hint)
			return textSpec{}, false
		}
	}
	t := ps.compile(s, where)
	if t.tmpl == nil {
		ps.errorf(n, "%s: %s", where, t.text)
		return textSpec{}, false
	}
	return t, true
}

// compile parses a template and runs it once on sample data, so that
// unknown fields are caught at load time. On failure it returns a textSpec
// with a nil tmpl and the reason as its text.
func (ps *parser) compile(text, name string) textSpec {
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err == nil {
		err = t.Execute(io.Discard, templateData{Call: Call{Tool: "tool", Upstream: "upstream", Client: "client 1.0", TraceID: "0", Args: map[string]any{}}, Role: "role", Grant: DefaultGrant.String()})
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: "+name+":")
		return textSpec{text: "template error: " + msg}
	}
	return textSpec{set: true, text: text, tmpl: t}
}

// finish turns the parsed alternatives into precomputed decisions, builds
// the lookup index and reports what needs the whole file: roles without
// approvals:, and patterns an earlier one always shadows.
func (ps *parser) finish() {
	p := ps.p
	p.prefixGlobs, p.suffixGlobs = &trieNode{}, &trieNode{}
	p.noMatch = Decision{Reason: ReasonNoMatch, Rule: ps.base}
	var firstRole *yaml.Node
	for i := range p.entries {
		e := &p.entries[i]
		visible := false
		for _, a := range ps.srcs[i] {
			d := ps.decision(a, e.pattern)
			if a.action == Activate {
				if firstRole == nil {
					firstRole = a.node
				}
				if e.target.Role == "" {
					e.target = a.target
				}
				if !slices.Contains(p.targets, a.target) {
					p.targets = append(p.targets, a.target)
				}
			}
			visible = visible || a.action != Deny
			e.alts = append(e.alts, alt{when: a.when, decision: d})
		}
		e.hidden = !visible
		e.noCondition = Decision{Reason: ReasonNoCondition, Rule: e.loc, Pattern: e.pattern}
		switch prefix, suffix := literalPrefix(e.pattern), literalSuffix(e.pattern); {
		case !isGlob(e.pattern):
			p.exact[e.pattern] = i
		case prefix == "" && suffix != "":
			p.suffixGlobs.insert(suffix, true, i)
		default:
			p.prefixGlobs.insert(prefix, false, i)
		}
	}
	if firstRole != nil && !ps.approvalsSet {
		ps.errorf(firstRole, "rules name PIM roles, groups or Azure roles, so the file needs an approvals: section (backend, tenantId, credential, ...)")
	}
	if ps.credNode != nil && slices.ContainsFunc(p.targets, func(t Target) bool { return t.Kind != KindAzureRole }) {
		ps.credentialFitsRoles()
	}
	for i := range p.entries {
		e := &p.entries[i]
		// A covering pattern's literal prefix (suffix) must begin (end)
		// this pattern's, so the same index finds the candidates.
		coversE := func(idx int) bool { return covers(p.entries[idx].pattern, e.pattern) }
		j := p.prefixGlobs.first(literalPrefix(e.pattern), false, i, coversE)
		j = p.suffixGlobs.first(literalSuffix(e.pattern), true, j, coversE)
		if j < i {
			ps.add(SeverityWarning, e.line, e.col, "tools[%q]: unreachable: %q (line %d) matches every tool this pattern does and comes first", e.pattern, p.entries[j].pattern, p.entries[j].line)
		}
	}
}

func (ps *parser) decision(a altSrc, pattern string) Decision {
	d := Decision{Action: a.action, Rule: a.loc, Pattern: pattern}
	switch a.action {
	case Allow:
		d.Reason = ReasonRuleAllow
	case Deny:
		d.Reason = ReasonRuleDeny
	case Activate:
		appr := ps.p.approvals
		d.Reason = ReasonRoleRequired
		d.Target = a.target
		d.Grant = a.grant
		if d.Grant == 0 {
			d.Grant = appr.DefaultGrant
		}
		just := a.just
		if !just.set {
			just = ps.defaultJust
		}
		d.JustificationRequired, d.justification = just.required, just.tmpl
		if !just.required {
			d.Justification = just.text
		}
		d.TicketRequired, d.ticket = a.ticket.required, a.ticket.tmpl
		if !a.ticket.required {
			d.Ticket = a.ticket.text
		}
		d.TicketSystem = appr.TicketSystem
		d.Confirm = a.confirm
	}
	return d
}
