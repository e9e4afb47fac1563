package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

func TestCachedReusesResultWithinTTL(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	probes := 0
	fail := errors.New("down")
	c := Cached(func(context.Context) error { probes++; return fail }, 30*time.Second, clk)
	steps := []struct {
		advance    time.Duration
		wantProbes int
	}{
		{0, 1},
		{10 * time.Second, 1},
		{19 * time.Second, 1},
		{time.Second, 2}, // 30s after the first probe
		{29 * time.Second, 2},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if err := c(t.Context()); !errors.Is(err, fail) {
			t.Fatalf("step %d: err = %v, want the probe's", i, err)
		}
		if probes != s.wantProbes {
			t.Fatalf("step %d: %d probes, want %d", i, probes, s.wantProbes)
		}
	}
}

func TestReadyz(t *testing.T) {
	ok := Check{Name: "policy", Probe: func(context.Context) error { return nil }}
	down := Check{Name: "upstreams", Probe: func(context.Context) error { return errors.New("not connected: db") }}
	slow := Check{Name: "graph", Probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	tests := []struct {
		name     string
		checks   []Check
		wantCode int
		want     map[string]string
	}{
		{"all pass", []Check{ok}, http.StatusOK, nil},
		{"one fails", []Check{ok, down}, http.StatusServiceUnavailable, map[string]string{"upstreams": "not connected: db"}},
		{"one outlives the bound", []Check{ok, slow}, http.StatusServiceUnavailable, map[string]string{"graph": context.DeadlineExceeded.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Readyz(tt.checks, 20*time.Millisecond).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantCode)
			}
			var rep Report
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Ready != (tt.wantCode == http.StatusOK) || len(rep.NotReady) != len(tt.want) {
				t.Fatalf("report %+v, want not ready %v", rep, tt.want)
			}
			for k, v := range tt.want {
				if rep.NotReady[k] != v {
					t.Errorf("notReady[%s] = %q, want %q", k, rep.NotReady[k], v)
				}
			}
		})
	}
}
