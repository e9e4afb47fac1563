package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// readyz is the decoded /readyz answer.
type readyz struct {
	Ready    bool              `json:"ready"`
	NotReady map[string]string `json:"notReady"`
}

// /healthz answers while the process runs; /readyz answers 200 once every
// upstream is connected and 503 naming the one that is not.
func TestReadyz(t *testing.T) {
	tests := []struct {
		name      string
		upstreams []string
		wantCode  int
		wantDown  string // a name the upstreams reason must contain
	}{
		{"all connected", []string{"good=" + strings.Join(Upstream("good"), " ")}, http.StatusOK, ""},
		{"one never connects", []string{"good=" + strings.Join(Upstream("good"), " "), "dead=http://127.0.0.1:1/mcp"}, http.StatusServiceUnavailable, "dead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--policy", AllowAllPolicy(t)}
			for _, u := range tt.upstreams {
				args = append(args, "--upstream", u)
			}
			g := ServeGate(t, nil, args...)
			base := strings.TrimSuffix(g.URL, "/mcp")
			if code, body := get(t, base+"/healthz"); code != http.StatusOK {
				t.Fatalf("/healthz = %d %s, want 200", code, body)
			}
			var last readyz
			Eventually(t, "readiness settles", func() error {
				code, body := get(t, base+"/readyz")
				last = readyz{}
				if err := json.Unmarshal([]byte(body), &last); err != nil {
					return fmt.Errorf("/readyz body %q: %w", body, err)
				}
				if code != tt.wantCode {
					return fmt.Errorf("/readyz = %d %s, want %d", code, body, tt.wantCode)
				}
				if tt.wantDown != "" && last.NotReady["upstreams"] != "not connected: "+tt.wantDown {
					return fmt.Errorf("notReady = %v, want only %q", last.NotReady, tt.wantDown) // good may still be starting
				}
				return nil
			})
			if last.Ready != (tt.wantCode == http.StatusOK) {
				t.Errorf("ready = %v with status %d", last.Ready, tt.wantCode)
			}
			if len(last.NotReady) > 1 {
				t.Errorf("notReady = %v, want the upstreams alone", last.NotReady)
			}
		})
	}
}

var metricsAt = regexp.MustCompile(`metrics=(http://\S+)`)

// /metrics on --metrics-listen counts each call by decision and outcome,
// times the upstream, and counts open sessions; the MCP port serves no
// metrics then.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	pol := WritePolicy(t, fmt.Sprintf("version: 1\naudit:\n  path: %q\ntools:\n  echo: allow\n  \"*\": deny\n", filepath.Join(dir, "audit.jsonl")))
	g := ServeGate(t, nil, "--policy", pol, "--metrics-listen", "127.0.0.1:0", "--upstream", "up="+strings.Join(Upstream("up"), " "))
	m := metricsAt.FindStringSubmatch(g.Stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", g.Stderr)
	}
	if code, _ := get(t, strings.TrimSuffix(g.URL, "/mcp")+"/metrics"); code == http.StatusOK {
		t.Errorf("the MCP port serves /metrics despite --metrics-listen")
	}

	c := g.Client(t, Protocols[0].Opts...) // 2025-11-25: a session the gate keeps
	const allowed, denied = 3, 2
	for i := range allowed {
		Call(t, c, "echo", map[string]any{"text": fmt.Sprint(i)})
	}
	for range denied {
		res, err := TryCall(context.Background(), c, "sleep", map[string]any{"ms": 1})
		if err == nil && !res.IsError {
			t.Fatal("a denied call succeeded")
		}
	}

	code, body := get(t, m[1])
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mcp_gate_calls_total", map[string]string{"decision": "allow", "outcome": "forwarded"}, allowed},
		{"mcp_gate_calls_total", map[string]string{"decision": "deny", "outcome": "refused"}, denied},
		{"mcp_gate_upstream_call_seconds", map[string]string{"upstream": "up"}, allowed}, // sample count
		{"mcp_gate_sessions", nil, 1},
		{"mcp_gate_grant_cache_entries", nil, 0},
	}
	for _, tt := range tests {
		got, ok := value(fams[tt.name], tt.labels)
		if !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

// value is the metric of f whose labels include labels: a counter's or
// gauge's value, a histogram's sample count.
func value(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}
