package policy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/mcp-gate/mcp-gate/internal/spell"
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
	ps.p.digest = sha256.Sum256(data)
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
	credNode     *yaml.Node // approvals.credential, else approvals:, for problems about the credential
	uiNode       *yaml.Node // ui:, when present
	defaultJust  textSpec
}

var (
	topKeys       = []string{"version", "approvals", "audit", "serve", "ui", "upstreams", "tools"}
	approvalsKeys = []string{"backend", "tenantId", "principalId", "credential", "clientId", "tokenFile", "armTokenFile", "graphURL", "armURL", "graphCAFile", "defaultGrant", "wait", "pollInterval", "pollMaxBackoff", "deadline", "grantMargin", "recheck", "settle", "maxBackground", "justification", "ticketSystem"}
	auditKeys     = []string{"path", "arguments"}
	upstreamKeys  = []string{"command", "env", "url", "headers", "timeout"}
	ruleKeys      = []string{"role", "group", "azureRole", "access", "scope", "grant", "when", "justification", "ticket", "confirm", "action"}

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
			ps.yamlError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		ps.yamlError(data, err)
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
		case "serve":
			ps.serve(v)
		case "ui":
			ps.uiSection(v)
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
	ps.onBehalfOfNeedsAuth()
	ps.uiNeedsAuthOffLoopback()
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
	best := spell.Closest(word, allowed)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
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

// boolean reads true or false (YAML 1.2: no yes/no, on/off).
func (ps *parser) boolean(n *yaml.Node, where string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		switch n.Value {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	ps.errorf(n, "%s: want true or false, got %s", where, describe(n))
	return false, false
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

// looksLikeGUID tells a role definition id with a typo (1234-5678,
// deadbeef) from a display name: only hex digits and dashes, with a digit,
// a dash or at least 8 characters, so that a short word of the letters a-f
// such as DBA stays a name.
func looksLikeGUID(s string) bool {
	hex, digit := 0, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			hex, digit = hex+1, true
		case unicode.Is(unicode.ASCII_Hex_Digit, r):
			hex++
		case r != '-':
			return false
		}
	}
	return hex > 0 && (digit || strings.Contains(s, "-") || len(s) >= 8)
}

func (ps *parser) version(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || n.Value != "1" || n.ShortTag() != "!!int" {
		ps.errorf(n, "version: want 1 (the only version this mcp-gate reads), got %s", describe(n))
	}
}
