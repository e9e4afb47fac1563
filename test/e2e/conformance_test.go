package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConformance runs the official MCP conformance suite's server
// scenarios (the pinned @modelcontextprotocol/conformance) against the
// test upstream's conformance fixtures directly, then through a gate in
// front of the same fixtures over Streamable HTTP and over stdio: every
// scenario must pass directly, and then through the gate too.
func TestConformance(t *testing.T) {
	node, cli := conformanceSuite(t)
	upstreamURL := httpUpstream(t, "--name", "conformance", "--conformance")
	overHTTP := ServeGate(t, nil, "--policy", AllowAllPolicy(t), "--upstream", "conformance="+upstreamURL)
	overStdio := ServeGate(t, nil, "--policy", AllowAllPolicy(t), "--", UpstreamBin, "--name", "conformance", "--conformance")
	// The suite compares answers, not startup: each gate runs it once its
	// upstream is connected.
	for _, g := range []*Gate{overHTTP, overStdio} {
		Eventually(t, "the gate connects its upstream", func() error {
			if code, body := get(t, strings.TrimSuffix(g.URL, "/mcp")+"/readyz"); code != http.StatusOK {
				return fmt.Errorf("/readyz = %d %s", code, body)
			}
			return nil
		})
	}

	direct := runConformance(t, node, cli, upstreamURL)
	if len(direct) < 25 { // the pinned suite has 32 server scenarios
		t.Fatalf("the suite ran %d scenarios directly, want the whole suite: %v", len(direct), slices.Sorted(maps.Keys(direct)))
	}
	gates := []struct {
		name    string
		results map[string]scenarioResult
	}{
		{"gate, HTTP upstream", runConformance(t, node, cli, overHTTP.URL)},
		{"gate, stdio upstream", runConformance(t, node, cli, overStdio.URL)},
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-32s %-8s %-22s %s\n", "scenario", "direct", gates[0].name, gates[1].name)
	for _, name := range slices.Sorted(maps.Keys(direct)) {
		d := direct[name]
		fmt.Fprintf(&table, "%-32s %-8s %-22s %s\n", name, d.verdict(), gates[0].results[name].verdict(), gates[1].results[name].verdict())
		if !d.passed() {
			t.Errorf("%s fails directly, so the gate cannot be compared on it: %s", name, d.failures)
			continue
		}
		for _, g := range gates {
			got, ran := g.results[name]
			switch {
			case !ran:
				t.Errorf("%s: %s did not run", g.name, name)
			case !got.passed():
				t.Errorf("%s: %s passes directly but fails through the gate: %s", g.name, name, got.failures)
			}
		}
	}
	t.Logf("conformance scenarios:\n%s", table.String())
}

// conformanceSuite returns the Node binary and the conformance CLI from
// node_modules. The suite needs Node 22, which package.json pins as the node
// package, so that it runs whatever Node the machine has. It skips the test
// when they are missing, except under CI=true.
func conformanceSuite(t *testing.T) (node, cli string) {
	t.Helper()
	node = filepath.Join(moduleRoot, "node_modules", "node", "bin", "node")
	cli = filepath.Join(moduleRoot, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, f := range []string{node, cli} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the MCP conformance suite is not installed (%v): run npm ci", err)
			}
			t.Skipf("the MCP conformance suite is not installed (%v): run npm ci", err)
		}
	}
	return node, cli
}

// scenarioResult is what the suite checked in one scenario.
type scenarioResult struct {
	checks   int
	failures []string // "check id: message" of each check with status FAILURE
}

// passed is the suite's own verdict: a scenario passes when it ran checks
// and none failed (warnings do not fail it).
func (r scenarioResult) passed() bool { return r.checks > 0 && len(r.failures) == 0 }

// verdict is r in a word, for the test's table.
func (r scenarioResult) verdict() string {
	switch {
	case r.checks == 0:
		return "absent"
	case r.passed():
		return "pass"
	default:
		return "FAIL"
	}
}

// resultDir is the directory the suite writes each scenario's checks to:
// server-<scenario>-<timestamp>.
var resultDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$`)

// runConformance runs all the suite's server scenarios (the pending ones too) against url and
// returns each scenario's result, read from the files the suite writes.
// The suite's exit status only says whether some scenario failed, so it is
// not an error.
func runConformance(t *testing.T, node, cli, url string) map[string]scenarioResult {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "server", "--url", url, "--suite", "all", "--output-dir", out)
	output, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && ctx.Err() == nil) {
		t.Fatalf("conformance suite against %s: %v\n%s", url, err, output)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	results := make(map[string]scenarioResult)
	for _, e := range entries {
		m := resultDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(out, e.Name(), "checks.json"))
		if err != nil {
			t.Fatalf("scenario %s left no checks: %v\n%s", m[1], err, output)
		}
		var checks []struct {
			ID           string `json:"id"`
			Status       string `json:"status"`
			ErrorMessage string `json:"errorMessage"`
		}
		if err := json.Unmarshal(raw, &checks); err != nil {
			t.Fatalf("scenario %s: checks.json: %v", m[1], err)
		}
		r := scenarioResult{checks: len(checks)}
		for _, c := range checks {
			if c.Status == "FAILURE" {
				r.failures = append(r.failures, c.ID+": "+c.ErrorMessage)
			}
		}
		if _, dup := results[m[1]]; dup {
			t.Fatalf("scenario %s ran twice", m[1])
		}
		results[m[1]] = r
	}
	return results
}
