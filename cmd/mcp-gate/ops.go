package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/health"
)

// Paths of the operations endpoints.
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
	metricsPath = "/metrics"
)

// readyTimeout bounds one /readyz answer, Graph probe included: kubelet's
// default probe timeout is 1s, and a slower answer reads as a failure anyway.
const readyTimeout = 900 * time.Millisecond

// graphProbeTTL is how long a Graph reachability result is reused, so that
// every replica's probes every few seconds do not each reach Graph.
const graphProbeTTL = 30 * time.Second

// readiness lists what must hold before the gate takes traffic: a policy in
// force, every upstream connected, with serve.auth the tenant's signing
// keys at hand, and Graph answering when some rule names a role.
func (g *gateway) readiness() []health.Check {
	checks := []health.Check{
		{Name: "policy", Probe: func(context.Context) error {
			if g.gating.policy.Load() == nil {
				return errors.New("no policy loaded")
			}
			return nil
		}},
		{Name: "upstreams", Probe: func(context.Context) error {
			if down := g.Disconnected(); len(down) > 0 {
				return fmt.Errorf("not connected: %s", strings.Join(down, ", "))
			}
			return nil
		}},
	}
	if g.tokenKeys != nil {
		checks = append(checks, health.Check{Name: "auth", Probe: func(ctx context.Context) error {
			if err := g.tokenKeys(ctx); err != nil {
				return fmt.Errorf("cannot check tokens: %w", err)
			}
			return nil
		}})
	}
	if c := g.gating.graph; c != nil {
		checks = append(checks, health.Check{Name: "graph", Probe: health.Cached(func(ctx context.Context) error {
			if err := c.Reachable(ctx); err != nil {
				return fmt.Errorf("no answer from Microsoft Graph: %w", err)
			}
			return nil
		}, graphProbeTTL, clock.Real{})})
	}
	return checks
}

// opsRoutes adds /healthz and /readyz to mux, and /metrics when withMetrics.
func (g *gateway) opsRoutes(mux *http.ServeMux, withMetrics bool) {
	mux.HandleFunc("GET "+healthzPath, health.Healthz)
	mux.Handle("GET "+readyzPath, health.Readyz(g.readiness(), readyTimeout))
	if withMetrics {
		mux.Handle("GET "+metricsPath, promhttp.HandlerFor(g.metrics, promhttp.HandlerOpts{}))
	}
}
