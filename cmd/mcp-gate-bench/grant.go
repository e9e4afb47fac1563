package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// The cached-grant case: echo needs a PIM role that is already active for
// the gate's user, so after the first call every call is admitted by the
// grant cache. Compared with the same gate where echo needs no role, it
// shows what the gated path costs once a grant is live, and the emulator's
// request count shows that the cached path makes no Graph request besides
// the grant's re-confirmation, one read every half of approvals.recheck.
const (
	benchUser    = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	benchRole    = "Bench Operators"
	benchRecheck = time.Minute // the default, written out
)

const gatedPolicy = `version: 1
approvals:
  credential: token
  tokenFile: %q
  graphURL: %s
  graphCAFile: %q
  recheck: %s
audit:
  path: %q
tools:
  echo: {role: %s}
  "*": allow
`

var gateStdioCachedGrant = setup{"gate stdio→stdio, echo on a cached grant", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
	srv, err := pimtest.NewServer(pimtest.Scenario{
		Users:         []pimtest.User{{ID: benchUser, Name: "bench"}},
		Roles:         []pimtest.Role{{DisplayName: benchRole, MaxDuration: 8 * time.Hour}},
		Eligibilities: []pimtest.Eligibility{{Principal: benchUser, Role: benchRole}},
		Active:        []pimtest.Assignment{{Principal: benchUser, Role: benchRole, Duration: 8 * time.Hour}},
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.dir, "grant")
	if err != nil {
		srv.Close()
		return nil, err
	}
	caFile, tokenFile, policyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token"), filepath.Join(dir, "policy.yaml")
	policy := fmt.Sprintf(gatedPolicy, tokenFile, srv.URL(), caFile, benchRecheck, filepath.Join(dir, "audit.jsonl"), benchRole)
	for name, data := range map[string][]byte{caFile: srv.CACertPEM(), tokenFile: []byte(srv.Token(benchUser)), policyFile: []byte(policy)} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			srv.Close()
			return nil, err
		}
	}
	sys, err := startStdio(ctx, e, protocol, profileEnv(profile), e.gate(), "--policy", policyFile, "--", e.upstream())
	if err != nil {
		srv.Close()
		return nil, err
	}
	stop := sys.stop
	sys.stop = func() { stop(); srv.Close() }
	sys.graphHits = srv.HitCount
	return sys, nil
}}

// cachedGrantTargets hold the cached-grant case to its goals: no more than
// 5% slower than an ungated call, and no Graph request once warm.
func cachedGrantTargets(protocol string) []target {
	key := caseKey(cachedGrantCase, 1, protocol)
	return []target{
		{"gated on a cached grant c=1 " + protocol + " p50, gated/ungated", "≤ 1.05×", ratioTarget(key, func(r result, s side) float64 {
			return ratio(float64(s.P50), float64(r.baseline.P50))
		}, func(v float64) bool { return v <= 1.05 }, "%.2f×")},
		{"gated on a cached grant c=1 " + protocol + ": Graph requests during the measured calls", "0 besides re-confirmations (1 per recheck/2)", func(results map[string]result) (string, string, bool, bool) {
			r, ok := results[key]
			if !ok || r.err != nil || r.graphHits < 0 {
				return "", "", false, false
			}
			due := confirmationsDue(r.measured)
			return fmt.Sprintf("%d (re-confirmations due in %s: ≤ %d)", r.graphHits, r.measured.Round(time.Second), due), "—", r.graphHits <= due, true
		}},
	}
}

const cachedGrantCase = "gated (cached grant) vs ungated, both through the gate, stdio"

// confirmationsDue is how many re-confirmations of the cached grant can fall
// within d: one every half of benchRecheck, the first possibly at once.
func confirmationsDue(d time.Duration) int {
	half := benchRecheck / 2
	return int((d + half - 1) / half)
}
