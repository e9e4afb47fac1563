// Package policy parses and validates mcp-gate's policy file (which tool
// calls are allowed, denied, or need a PIM role; how approvals, audit and
// upstreams are set up), decides calls against it without I/O, and reloads
// it when the file changes.
//
// A Policy is immutable once built, so one value can serve any number of
// concurrent calls while a reload swaps in the next one.
package policy

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Policy is a validated policy file. Build one with Load or Parse; a Policy
// only exists for a file without errors.
type Policy struct {
	file      string            // path as given, for messages
	digest    [sha256.Size]byte // of the file's content, so a watcher can tell an edit from a touch
	approvals Approvals
	audit     Audit
	serveAuth ServeAuth
	ui        UI
	upstreams []Upstream
	entries   []entry
	targets   []Target

	// The lookup index: exact names in a map, globs in two tries (see
	// trieNode); every glob is in exactly one trie.
	exact       map[string]int
	prefixGlobs *trieNode
	suffixGlobs *trieNode
	noMatch     Decision
}

// Approvals is the approvals: section with defaults filled in.
type Approvals struct {
	Backend        string // "entra-pim"
	TenantID       string // GUID or empty
	PrincipalID    string // GUID or empty: the signed-in credential's oid
	Credential     string // one of default, azurecli, devicecode, browser, managedidentity, workloadidentity, environment, token
	ClientID       string // the organisation's app registration (GUID) for browser, devicecode, workloadidentity; user-assigned identity for managedidentity
	TokenFile      string // for credential: token; empty means the caller finds the token elsewhere
	ARMTokenFile   string // for credential: token, the Azure Resource Manager token (Azure roles); empty: the environment's
	GraphURL       string // without a trailing slash
	ARMURL         string // Azure Resource Manager, for Azure roles; without a trailing slash
	GraphCAFile    string // extra CA (PEM) trusted for GraphURL and ARMURL, or empty
	DefaultGrant   time.Duration
	Wait           time.Duration // when WaitSet; 0: answer with a receipt at once
	WaitSet        bool          // false: the wait depends on the client (package clients)
	PollInterval   time.Duration
	PollMaxBackoff time.Duration
	Deadline       time.Duration // lifetime of a background activation
	GrantMargin    time.Duration // a grant counts as expired this long before its end
	Recheck        time.Duration // a cached grant admits calls this long after Entra last showed it live
	Settle         time.Duration // pause after a fresh activation before forwarding; 0: none
	MaxBackground  int           // activations polled in the background at most
	Justification  string        // default justification template, or "required"
	TicketSystem   string
}

// Audit is the audit: section with defaults filled in.
type Audit struct {
	Path      string // may start with ~/; see ExpandHome
	Arguments string // ArgumentsHashed or ArgumentsClear
}

// Upstream is one entry of upstreams:, in file order. Exactly one of
// Command and URL is set. ${VAR} references are kept as written: the proxy
// expands them when it connects, so secrets never sit in the parsed policy.
type Upstream struct {
	Name    string
	Command []string
	Env     map[string]string
	URL     string
	Headers map[string]string
	Timeout time.Duration // of one tool call at the upstream; 0: the proxy's default
}

// File returns the path the policy was loaded from.
func (p *Policy) File() string { return p.file }

// Rules returns the number of entries under tools:.
func (p *Policy) Rules() int { return len(p.entries) }

// Approvals returns the approvals: settings, defaults filled in.
func (p *Policy) Approvals() Approvals { return p.approvals }

// Audit returns the audit: settings, defaults filled in.
func (p *Policy) Audit() Audit { return p.audit }

// Upstreams returns the upstreams: entries in file order.
func (p *Policy) Upstreams() []Upstream {
	out := make([]Upstream, len(p.upstreams))
	for i, u := range p.upstreams {
		out[i] = u
		out[i].Command = append([]string(nil), u.Command...)
		out[i].Env = maps.Clone(u.Env)
		out[i].Headers = maps.Clone(u.Headers)
	}
	return out
}

// Roles returns every distinct target (directory role, group or Azure role
// at a scope) named by a rule, in file order, so a server can resolve them
// or check eligibility at start.
func (p *Policy) Roles() []Target { return append([]Target(nil), p.targets...) }

// ExpandHome replaces a leading "~" or "~/" in path with the user's home
// directory. Other paths are returned unchanged.
func ExpandHome(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %q: %w", path, err)
	}
	return filepath.Join(home, strings.TrimPrefix(path, "~")), nil
}
