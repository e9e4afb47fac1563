package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Load reads and validates the policy file at path. Problems lists every
// error and warning in file order. When any problem is an error, the
// returned error is a *ValidationError and the Policy is nil: an invalid
// file never yields a usable policy.
func Load(path string) (*Policy, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for a policy held in memory; file names it in problems,
// and its base name is used in rule locations ("policies.yaml:12").
func Parse(file string, data []byte) (*Policy, []Problem, error) {
	ps := &parser{file: file, base: filepath.Base(file)}
	ps.p = &Policy{file: file, approvals: defaultApprovals(), audit: defaultAudit(), exact: map[string]int{}}
	ps.defaultJust = ps.compile(DefaultJustification, "justification")
	if root := ps.document(data); root != nil {
		ps.top(root)
		ps.finish()
	}
	sort.SliceStable(ps.problems, func(i, j int) bool {
		a, b := ps.problems[i], ps.problems[j]
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	var errs []Problem
	for _, pr := range ps.problems {
		if pr.Severity == SeverityError {
			errs = append(errs, pr)
		}
	}
	if len(errs) > 0 {
		return nil, ps.problems, &ValidationError{File: file, Problems: errs}
	}
	return ps.p, ps.problems, nil
}

// parser walks the YAML node tree, collecting every problem instead of
// stopping at the first, and fills in a Policy as it goes.
type parser struct {
	file, base string
	problems   []Problem
	p          *Policy

	srcs         [][]altSrc // alternatives of p.entries[i], before defaults apply
	approvalsSet bool
	defaultJust  textSpec
}

// altSrc is one alternative as written; finish turns it into an alt once
// approvals: (which may come later in the file) is known.
type altSrc struct {
	loc    string
	node   *yaml.Node
	action Action
	role   string
	grant  time.Duration
	when   []cond
	just   textSpec
	ticket textSpec
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

var (
	topKeys       = []string{"version", "approvals", "audit", "upstreams", "tools"}
	approvalsKeys = []string{"backend", "tenantId", "principalId", "credential", "tokenFile", "graphURL", "graphCAFile", "defaultGrant", "wait", "pollInterval", "pollMaxBackoff", "deadline", "grantMargin", "maxBackground", "justification", "ticketSystem"}
	auditKeys     = []string{"path", "arguments"}
	upstreamKeys  = []string{"command", "env", "url", "headers"}
	ruleKeys      = []string{"role", "grant", "when", "justification", "ticket"}

	guidRE         = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	upstreamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerNameRE   = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	yamlLineRE     = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

func (ps *parser) add(sev Severity, line, col int, format string, args ...any) {
	ps.problems = append(ps.problems, Problem{File: ps.file, Line: max(line, 1), Col: max(col, 1), Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func (ps *parser) errorf(n *yaml.Node, format string, args ...any) {
	ps.add(SeverityError, n.Line, n.Column, format, args...)
}

func (ps *parser) warnf(n *yaml.Node, format string, args ...any) {
	ps.add(SeverityWarning, n.Line, n.Column, format, args...)
}

// document parses the YAML and returns the root mapping, or nil after
// reporting why there is none.
func (ps *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(SeverityError, 1, 1, "the file is empty; a policy needs at least version: 1 and tools:")
		} else {
			ps.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		ps.yamlError(err)
	default:
		ps.errorf(&next, "a policy file holds one YAML document; remove this second one")
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		ps.add(SeverityError, 1, 1, "the file is empty; a policy needs at least version: 1 and tools:")
		return nil
	}
	return root
}

func (ps *parser) yamlError(err error) {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		// yaml.v3 reports scanner errors with 1-based lines but parser
		// errors with 0-based ones (the line where the enclosing block
		// starts).
		if slices.Contains(yamlParserProblems, msg) {
			line++
		}
	}
	ps.add(SeverityError, line, 1, "YAML syntax: %s", msg)
}

// yamlParserProblems are the messages of yaml.v3's parser (not scanner)
// errors.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func (ps *parser) top(root *yaml.Node) {
	var version, tools bool
	ok := ps.fields(root, "", topKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			version = true
			ps.version(v)
		case "approvals":
			ps.approvalsSet = true
			ps.approvals(v)
		case "audit":
			ps.audit(v)
		case "upstreams":
			ps.upstreams(v)
		case "tools":
			tools = true
			ps.tools(v)
		}
	})
	if !ok {
		return
	}
	if !version {
		ps.errorf(root, "version: missing; start the file with version: 1")
	}
	if !tools {
		ps.errorf(root, "tools: missing; list tool patterns and their rules, e.g. tools: {\"*\": deny}")
	}
}

// pairs checks that n is a mapping with string keys, none twice, and calls
// fn for each pair in file order.
func (ps *parser) pairs(n *yaml.Node, where string, fn func(k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, "%s: want a mapping, got %s", label(where), describe(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			ps.errorf(k, "%s: a key must be a name, got %s", label(where), describe(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			ps.errorf(k, "%s: %q appears twice (first at line %d)", label(where), k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v)
	}
	return true
}

// fields is pairs for a mapping with a fixed set of keys.
func (ps *parser) fields(n *yaml.Node, where string, allowed []string, fn func(key string, k, v *yaml.Node)) bool {
	return ps.pairs(n, where, func(k, v *yaml.Node) {
		if !slices.Contains(allowed, k.Value) {
			ps.errorf(k, "%s: unknown key %q%s; allowed: %s", label(where), k.Value, suggest(k.Value, allowed), strings.Join(allowed, ", "))
			return
		}
		fn(k.Value, k, v)
	})
}

func label(where string) string {
	if where == "" {
		return "top level"
	}
	return where
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// suggest offers the allowed word closest to a misspelt one (tenantID for
// tenantId, tool for tools), if one is close.
func suggest(word string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if d := distance(strings.ToLower(word), strings.ToLower(a)); d < bestDist {
			best, bestDist = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein edit distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (*" + n.Value + "); aliases are not supported, write the value out"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// str reads a string scalar; nullOK lets an empty value stand for "".
func (ps *parser) str(n *yaml.Node, where string, nullOK bool) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str":
			return n.Value, true
		case "!!null":
			if nullOK {
				return "", true
			}
		}
	}
	ps.errorf(n, "%s: want a string, got %s", where, describe(n))
	return "", false
}

// scalar reads any non-null scalar as its text: globs and command
// arguments may be written as numbers or booleans.
func (ps *parser) scalar(n *yaml.Node, where, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		ps.errorf(n, "%s: want %s, got %s", where, want, describe(n))
		return "", false
	}
	return n.Value, true
}

func (ps *parser) oneOf(n *yaml.Node, where string, allowed []string) (string, bool) {
	s, ok := ps.str(n, where, false)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		ps.errorf(n, "%s: unknown value %q%s; allowed: %s", where, s, suggest(s, allowed), strings.Join(allowed, ", "))
		return "", false
	}
	return s, true
}

// duration reads a Go duration within (0, 24h], or [0, 24h] when zeroOK.
func (ps *parser) duration(n *yaml.Node, where string, zeroOK bool) (time.Duration, bool) {
	s, ok := ps.scalar(n, where, "a duration such as 30s, 15m or 1h30m")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		ps.errorf(n, "%s: %q is not a duration; write a Go duration such as 30s, 15m or 1h30m", where, s)
	case d < 0 && zeroOK:
		ps.errorf(n, "%s: %s is negative; use 0 or more", where, s)
	case d <= 0 && !zeroOK:
		ps.errorf(n, "%s: %s must be more than 0", where, s)
	case d > maxDuration:
		ps.errorf(n, "%s: %s is longer than the maximum of 24h", where, s)
	default:
		return d, true
	}
	return 0, false
}

func (ps *parser) guid(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, true)
	if ok && s != "" && !guidRE.MatchString(s) {
		ps.errorf(n, "%s: %q is not a GUID; want 8-4-4-4-12 hex digits, e.g. 00000000-1111-2222-3333-444444444444", where, s)
	}
	return s
}

// looksLikeGUID tells a role definition id with a typo from a display
// name: only hex digits and dashes, and long enough to be meant as an id.
func looksLikeGUID(s string) bool {
	if len(s) < 16 || !strings.Contains(s, "-") {
		return false
	}
	for _, r := range s {
		if r != '-' && !unicode.Is(unicode.ASCII_Hex_Digit, r) {
			return false
		}
	}
	return true
}

func (ps *parser) version(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || n.Value != "1" || n.ShortTag() != "!!int" {
		ps.errorf(n, "version: unsupported version %s; this mcp-gate reads version: 1", describe(n))
	}
}

func (ps *parser) approvals(n *yaml.Node) {
	a := &ps.p.approvals
	const where = "approvals"
	var tokenFile, pollMax *yaml.Node
	ps.fields(n, where, approvalsKeys, func(key string, k, v *yaml.Node) {
		at := join(where, key)
		switch key {
		case "backend":
			a.Backend, _ = ps.oneOf(v, at, backends)
		case "tenantId":
			a.TenantID = ps.guid(v, at)
		case "principalId":
			a.PrincipalID = ps.guid(v, at)
		case "credential":
			a.Credential, _ = ps.oneOf(v, at, credentials)
		case "tokenFile":
			tokenFile = v
			a.TokenFile, _ = ps.str(v, at, true)
		case "graphURL":
			a.GraphURL = ps.graphURL(v, at)
		case "graphCAFile":
			a.GraphCAFile, _ = ps.str(v, at, true)
		case "defaultGrant":
			a.DefaultGrant, _ = ps.duration(v, at, false)
		case "wait":
			a.Wait, _ = ps.duration(v, at, true)
		case "pollInterval":
			a.PollInterval, _ = ps.duration(v, at, false)
		case "pollMaxBackoff":
			pollMax = v
			a.PollMaxBackoff, _ = ps.duration(v, at, false)
		case "deadline":
			a.Deadline, _ = ps.duration(v, at, false)
		case "grantMargin":
			a.GrantMargin, _ = ps.duration(v, at, true)
		case "maxBackground":
			if s, ok := ps.scalar(v, at, "a whole number"); ok {
				m, err := strconv.Atoi(s)
				if err != nil || m <= 0 || v.ShortTag() != "!!int" {
					ps.errorf(v, "%s: %s is not a whole number above 0", at, describe(v))
				} else {
					a.MaxBackground = m
				}
			}
		case "justification":
			if t, ok := ps.text(v, at); ok {
				ps.defaultJust = t
				a.Justification = v.Value
			}
		case "ticketSystem":
			if s, ok := ps.str(v, at, false); ok && strings.TrimSpace(s) == "" {
				ps.errorf(v, "%s: must not be empty", at)
			}
			a.TicketSystem = v.Value
		}
	})
	if tokenFile != nil && a.TokenFile != "" && a.Credential != "token" {
		ps.errorf(tokenFile, "approvals.tokenFile: only used with credential: token (credential is %q)", a.Credential)
	}
	if pollMax != nil && a.PollMaxBackoff > 0 && a.PollInterval > 0 && a.PollMaxBackoff < a.PollInterval {
		ps.errorf(pollMax, "approvals.pollMaxBackoff: %s is below pollInterval %s", a.PollMaxBackoff, a.PollInterval)
	}
}

// graphURL accepts https, or http for a loopback host only (the emulator),
// so a token is never sent in clear over a network.
func (ps *parser) graphURL(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, false)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https":
		ps.errorf(n, "%s: %q is not an absolute http(s) URL, e.g. %s", where, s, DefaultGraphURL)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		ps.errorf(n, "%s: http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://", where)
	case u.RawQuery != "" || u.Fragment != "":
		ps.errorf(n, "%s: must not have a query or fragment", where)
	}
	return strings.TrimRight(s, "/")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (ps *parser) audit(n *yaml.Node) {
	a := &ps.p.audit
	ps.fields(n, "audit", auditKeys, func(key string, k, v *yaml.Node) {
		at := join("audit", key)
		switch key {
		case "path":
			if s, ok := ps.str(v, at, false); ok && strings.TrimSpace(s) == "" {
				ps.errorf(v, "%s: must not be empty", at)
			}
			a.Path = v.Value
		case "arguments":
			a.Arguments, _ = ps.oneOf(v, at, argModes)
		}
	})
}

func (ps *parser) upstreams(n *yaml.Node) {
	ps.pairs(n, "upstreams", func(k, v *yaml.Node) {
		name := k.Value
		where := "upstreams." + name
		if !upstreamNameRE.MatchString(name) || strings.Contains(name, "__") {
			ps.errorf(k, "upstreams: name %q: use letters, digits, - and _, and not \"__\" (it separates upstream and tool in tool names)", name)
		}
		u := Upstream{Name: name}
		var command, url bool
		ok := ps.fields(v, where, upstreamKeys, func(key string, _, fv *yaml.Node) {
			at := join(where, key)
			switch key {
			case "command":
				command = true
				u.Command = ps.command(fv, at)
			case "env":
				u.Env = ps.stringMap(fv, at, envNameRE, "an environment variable name")
			case "url":
				url = true
				u.URL = ps.upstreamURL(fv, at)
			case "headers":
				u.Headers = ps.stringMap(fv, at, headerNameRE, "an HTTP header name")
			}
		})
		switch {
		case !ok:
		case command && url:
			ps.errorf(k, "%s: give either command or url, not both", where)
		case !command && !url:
			ps.errorf(k, "%s: missing command (a process to start) or url (a Streamable HTTP endpoint)", where)
		case command && u.Headers != nil:
			ps.errorf(k, "%s: headers are only used with url", where)
		case url && u.Env != nil:
			ps.errorf(k, "%s: env is only used with command", where)
		}
		ps.p.upstreams = append(ps.p.upstreams, u)
	})
}

func (ps *parser) command(n *yaml.Node, where string) []string {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		ps.errorf(n, "%s: want a non-empty list: the program and its arguments, e.g. [./server, --flag], got %s", where, describe(n))
		return nil
	}
	var argv []string
	for i, a := range n.Content {
		s, ok := ps.scalar(a, fmt.Sprintf("%s[%d]", where, i), "a string")
		if ok && i == 0 && strings.TrimSpace(s) == "" {
			ps.errorf(a, "%s: the program must not be empty", where)
		}
		argv = append(argv, s)
	}
	return argv
}

func (ps *parser) stringMap(n *yaml.Node, where string, nameRE *regexp.Regexp, what string) map[string]string {
	m := map[string]string{}
	ps.pairs(n, where, func(k, v *yaml.Node) {
		if !nameRE.MatchString(k.Value) {
			ps.errorf(k, "%s: %q is not %s", where, k.Value, what)
		}
		if s, ok := ps.str(v, join(where, k.Value), false); ok {
			m[k.Value] = s
		}
	})
	return m
}

// upstreamURL checks an upstream's endpoint. A URL holding ${VAR} is only
// checked for its scheme, since the proxy expands it at connect time.
func (ps *parser) upstreamURL(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, false)
	if !ok {
		return ""
	}
	if strings.Contains(s, "${") {
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			ps.errorf(n, "%s: want an http:// or https:// URL", where)
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		ps.errorf(n, "%s: %q is not an absolute http(s) URL", where, s)
	}
	return s
}

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
	always := -1 // index of the first alternative without conditions
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
		if always >= 0 {
			ps.warnf(item, "%s: unreachable: alternative %d (line %d) has no when and always applies first", at, always, n.Content[always].Line)
		} else if len(a.when) == 0 {
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
		ps.errorf(n, "%s: want allow, deny, a mapping {role, grant, when, justification, ticket} or a list of them, got %s", where, describe(n))
		return a, false
	}
	a.action = Activate
	hasRole, ok := false, true
	ps.fields(n, where, ruleKeys, func(key string, k, v *yaml.Node) {
		at := join(where, key)
		var good bool
		switch key {
		case "role":
			hasRole = true
			a.role, good = ps.role(v, at)
		case "grant":
			a.grant, good = ps.duration(v, at, false)
		case "when":
			a.when, good = ps.when(v, at)
		case "justification":
			a.just, good = ps.text(v, at)
		case "ticket":
			a.ticket, good = ps.text(v, at)
		}
		ok = ok && good
	})
	if !hasRole {
		ps.errorf(n, "%s: missing role; a rule mapping names the PIM role a call needs (write allow or deny for rules without one)", where)
		ok = false
	}
	return a, ok
}

func (ps *parser) role(n *yaml.Node, where string) (string, bool) {
	s, ok := ps.str(n, where, true)
	if !ok {
		return "", false
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		ps.errorf(n, "%s: must not be empty; give a PIM role display name or role definition id", where)
		return "", false
	case looksLikeGUID(s) && !guidRE.MatchString(s):
		ps.errorf(n, "%s: %q looks like a role definition id but is not a GUID; want 8-4-4-4-12 hex digits", where, s)
		return "", false
	}
	return s, true
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
		conds = append(conds, cond{key: k.Value, path: path, glob: glob})
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
		err = t.Execute(io.Discard, templateData{Tool: "tool", Role: "role", Grant: DefaultGrant.String(), Args: map[string]any{}})
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
				if e.role == "" {
					e.role = a.role
				}
				if !slices.Contains(p.roles, a.role) {
					p.roles = append(p.roles, a.role)
				}
			}
			visible = visible || a.action != Deny
			e.hasWhen = e.hasWhen || len(a.when) > 0
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
		ps.errorf(firstRole, "rules name PIM roles, so the file needs an approvals: section (backend, tenantId, credential, ...)")
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
		d.Role = a.role
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
	}
	return d
}
