package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/gate"
	"github.com/mcp-gate/mcp-gate/internal/grants"
	"github.com/mcp-gate/mcp-gate/internal/metrics"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
	"github.com/mcp-gate/mcp-gate/internal/ui"
)

// defaultPolicyPath is where the gate looks for its policy without --policy.
const defaultPolicyPath = "policies.yaml"

// grantCacheSize bounds the grants remembered: users × roles of one replica.
const grantCacheSize = 4096

// gating is the policy-driven half of a serving gate: the policy in force,
// the gate that applies it, and the audit log it writes.
type gating struct {
	path    string
	log     *slog.Logger
	started *policy.Policy // the policy at start, whose restart-only settings stay
	policy  atomic.Pointer[policy.Policy]
	gate    *gate.Gate
	audit   *audit.Log
	// obo activates for each HTTP caller (credential: onbehalfof); nil
	// with any other credential.
	obo   *pim.OnBehalfOf
	graph *pim.Client // nil when no rule names a role
	board *ui.Board   // what the approvals page shows; nil without ui:
}

// loadGating reads the policy (a gate without one refuses to start) and
// builds what enforces it, reporting to m.
func loadGating(path string, log *slog.Logger, stderr io.Writer, m *metrics.Metrics) (*gating, error) {
	pol, problems, err := policy.Load(path)
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if err != nil {
		return nil, fmt.Errorf("policy %s is not usable (mcp-gate does not start without a valid policy; `mcp-gate check %s` lists the problems): %w", path, path, err)
	}
	g := &gating{path: path, log: log, started: pol}
	g.policy.Store(pol)

	auditPath, err := policy.ExpandHome(pol.Audit().Path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if g.audit, err = audit.Open(auditPath); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var act gate.Activator
	if pol.Approvals().Credential == policy.CredentialOnBehalfOf && len(pol.Roles()) > 0 {
		g.obo, err = newOnBehalfOf(pol, log, m.GraphStatus)
		act = g.obo
	} else {
		var c *pim.Client
		if c, err = newActivator(pol, log, stderr, m.GraphStatus); c != nil { // a nil *pim.Client in the interface would not read as "no backend"
			act, g.graph = c, c
		}
	}
	if err != nil {
		g.audit.Close()
		return nil, err
	}
	ap := pol.Approvals()
	cache, err := grants.New(grants.Config{
		Size:          grantCacheSize,
		Margin:        ap.GrantMargin,
		MaxBackground: ap.MaxBackground,
		Lifetime:      ap.Deadline,
		Recheck:       ap.Recheck,
		Clock:         clock.Real{},
	})
	if err != nil {
		g.audit.Close()
		return nil, err
	}
	if err := registerCacheMetrics(m, cache); err != nil {
		g.audit.Close()
		return nil, err
	}
	cfg := gate.Config{Policy: g.policy.Load, Grants: cache, Audit: metrics.Auditor{Next: g.audit, M: m}, Clock: clock.Real{}, Logger: log}
	if pol.UI().Enabled() {
		g.board = ui.NewBoard(ui.BoardConfig{Clock: clock.Real{}, Held: cache.Held})
		cfg.Audit = ui.Auditor{Next: cfg.Audit, Board: g.board}
		cfg.Watch = func(k grants.Key, rec audit.Record, w *grants.Waiter) func() { return g.board.Waiting(k, rec, w) }
	}
	if act != nil {
		cfg.Activator = metrics.NewActivator(act, m)
	}
	if g.gate, err = gate.New(cfg); err != nil {
		g.audit.Close()
		return nil, err
	}
	log.Info("policy loaded", "file", path, "rules", pol.Rules(), "roles", len(pol.Roles()), "audit", auditPath)
	return g, nil
}

// newActivator builds the PIM client when some rule names a role, and
// returns nil when none does: such a policy needs no tenant. observe, if
// not nil, is told each Graph answer's status.
func newActivator(pol *policy.Policy, log *slog.Logger, stderr io.Writer, observe func(int)) (*pim.Client, error) {
	if len(pol.Roles()) == 0 {
		return nil, nil
	}
	ap := pol.Approvals()
	cred, err := newCredential(ap, stderr)
	if err != nil {
		return nil, err
	}
	c, err := pim.New(pim.Config{
		GraphURL:       ap.GraphURL,
		ARMURL:         ap.ARMURL,
		CAFile:         ap.GraphCAFile,
		Credential:     cred,
		CredentialKind: ap.Credential,
		TenantID:       ap.TenantID,
		PrincipalID:    ap.PrincipalID,
		PollInterval:   ap.PollInterval,
		PollMaxBackoff: ap.PollMaxBackoff,
		Logger:         log,
		Observe:        observe,
	})
	if err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	return c, nil
}

// newOnBehalfOf builds the per-caller activator: the gate's app
// registration (approvals.clientId, its secret, certificate or federated
// token from the environment, pim.ClientAuthFromEnv)
// exchanges each caller's token, from serve.auth's tenant and authority,
// for a Graph token for that caller.
func newOnBehalfOf(pol *policy.Policy, log *slog.Logger, observe func(int)) (*pim.OnBehalfOf, error) {
	ap, sa := pol.Approvals(), pol.ServeAuth()
	auth, err := pim.ClientAuthFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("approvals.credential onbehalfof: %w", err)
	}
	o, err := pim.NewOnBehalfOf(pim.OnBehalfOfConfig{
		TenantID: sa.TenantID, ClientID: ap.ClientID, Auth: auth,
		Authority: sa.Authority, AuthorityCAFile: sa.CAFile, MaxUsers: grantCacheSize,
		Client: pim.Config{
			GraphURL: ap.GraphURL, ARMURL: ap.ARMURL, CAFile: ap.GraphCAFile, TenantID: sa.TenantID,
			PollInterval: ap.PollInterval, PollMaxBackoff: ap.PollMaxBackoff, Logger: log, Observe: observe,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("approvals.credential onbehalfof: %w", err)
	}
	return o, nil
}

// registerCacheMetrics exposes the grant cache's size and lookups.
func registerCacheMetrics(m *metrics.Metrics, c *grants.Cache) error {
	return errors.Join(
		m.GaugeFunc("grant_cache_entries", "Grants held in this replica's cache.", func() float64 {
			n, _, _ := c.Stats()
			return float64(n)
		}),
		m.CounterFunc("grant_cache_hits_total", "Calls that found a live grant in the cache.", func() float64 {
			_, h, _ := c.Stats()
			return float64(h)
		}),
		m.CounterFunc("grant_cache_misses_total", "Calls that found no live grant in the cache (hit ratio: hits / (hits + misses)).", func() float64 {
			_, _, miss := c.Stats()
			return float64(miss)
		}),
	)
}

// newCredential builds the credential approvals: names. Sign-in prompts go
// to stderr, never stdout (the MCP stream); the interactive credentials
// load the record `mcp-gate login` kept.
func newCredential(ap policy.Approvals, stderr io.Writer) (azcore.TokenCredential, error) {
	if ap.Credential == policy.CredentialOnBehalfOf {
		return nil, errors.New("approvals.credential onbehalfof has no credential of its own: it signs in as each HTTP caller of mcp-gate serve")
	}
	record, err := policy.ExpandHome(pim.DefaultRecordFile)
	if err != nil {
		return nil, err
	}
	cred, err := pim.NewCredential(ap.Credential, pim.CredentialOptions{
		TenantID: ap.TenantID, ClientID: ap.ClientID, TokenFile: ap.TokenFile, ARMTokenFile: ap.ARMTokenFile, RecordFile: record, Prompt: stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("approvals.credential %s: %w", ap.Credential, err)
	}
	return cred, nil
}

// upstreams returns the policy's upstreams: entries for the proxy.
func (g *gating) upstreams() []proxy.UpstreamConfig {
	var out []proxy.UpstreamConfig
	for _, u := range g.started.Upstreams() {
		out = append(out, proxy.UpstreamConfig{Name: u.Name, Command: u.Command, Env: u.Env, URL: u.URL, Headers: u.Headers, Timeout: u.Timeout})
	}
	return out
}

// watch swaps in each valid edit of the policy file until ctx ends, and
// calls changed after each swap; an invalid edit keeps the last good policy.
// Settings that policy.RestartOnly lists keep their value from the start,
// and each reload that changes one says so.
func (g *gating) watch(ctx context.Context, changed func()) {
	err := policy.Watch(ctx, g.path, g.started, g.log, func(p *policy.Policy) {
		// Swapped before it is logged: whoever reads "policy reloaded"
		// finds the new policy deciding calls.
		g.policy.Store(p)
		g.log.Info("policy reloaded", "file", g.path, "rules", p.Rules())
		if waiting := policy.RestartOnly(g.started, p); len(waiting) > 0 {
			g.log.Warn("policy reloaded, but these settings keep their value until mcp-gate restarts", "file", g.path, "settings", strings.Join(waiting, ", "))
		}
		changed()
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		g.log.Error("policy file no longer watched; the last good policy stays in force", "file", g.path, "err", err)
	}
}

// Close flushes the audit log.
func (g *gating) Close() error { return g.audit.Close() }
