// Package metrics defines the gate's Prometheus metrics and the small
// wrappers that feed them from the points every call already passes: the
// audit write, the PIM activation and the Graph HTTP pipeline. Metrics are
// registered on a registry the caller passes in, never the global default.
// Every label value comes from a bounded set (decisions, outcomes, HTTP
// status codes, upstream names from configuration), never from tool
// arguments or names a client chooses.
package metrics

import (
	"context"
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/gate"
	"github.com/mcp-gate/mcp-gate/internal/pim"
)

// Namespace prefixes every metric name.
const Namespace = "mcp_gate"

// Metrics holds the gate's collectors. The zero value is not usable; call New.
type Metrics struct {
	calls        *prometheus.CounterVec
	approvalWait prometheus.Histogram
	upstream     *prometheus.HistogramVec
	activations  *prometheus.CounterVec
	graph        *prometheus.CounterVec
	reg          prometheus.Registerer
}

// waitBuckets span an approval wait: instant (a cached grant) to the
// hour-long deadlines a human approver may need.
var waitBuckets = []float64{0.01, 0.1, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "calls_total",
			Help: "Tool calls decided, by decision (allow, deny, activate) and final outcome (forwarded, refused, receipt, cancelled, error).",
		}, []string{"decision", "outcome"}),
		approvalWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "approval_wait_seconds",
			Help:    "How long calls that needed a role waited for it (zero for a cached grant).",
			Buckets: waitBuckets,
		}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "upstream_call_seconds",
			Help:    "Latency of tool calls forwarded to each upstream.",
			Buckets: prometheus.DefBuckets,
		}, []string{"upstream"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "activations_total",
			Help: "PIM activations the gate made, by kind (role, group, azureRole) and result.",
		}, []string{"kind", "status"}),
		graph: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "graph_requests_total",
			Help: "HTTP requests to Microsoft Graph (each retry counted), by status code; 0 means no HTTP answer.",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.approvalWait, m.upstream, m.activations, m.graph} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// GaugeFunc registers a gauge read from f at each scrape: for figures that
// live elsewhere (sessions, grant cache entries) and cost nothing to keep.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) error {
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// CounterFunc registers a counter read from f at each scrape.
func (m *Metrics) CounterFunc(name, help string, f func() float64) error {
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// GraphStatus counts one Graph HTTP answer; code 0 is a request that got none.
func (m *Metrics) GraphStatus(code int) {
	m.graph.WithLabelValues(strconv.Itoa(code)).Inc()
}

// auditor is what the gate writes records to; *audit.Log is one.
type auditor interface {
	Write(ctx context.Context, r audit.Record) error
	Err() error
}

// Auditor counts each record written through it, then writes it to Next.
type Auditor struct {
	Next auditor
	M    *Metrics
}

// Write observes r and passes it on. The admitted record (written before
// the call is forwarded) is not counted: the call's final record is.
func (a Auditor) Write(ctx context.Context, r audit.Record) error {
	if r.Outcome != audit.OutcomeAdmitted {
		a.M.calls.WithLabelValues(r.Decision, r.Outcome).Inc()
		if r.Decision == audit.DecisionActivate {
			a.M.approvalWait.Observe(float64(r.WaitMS) / 1e3)
		}
		if r.Outcome == audit.OutcomeForwarded && r.Upstream != "" {
			a.M.upstream.WithLabelValues(r.Upstream).Observe(float64(r.UpstreamMS) / 1e3)
		}
	}
	return a.Next.Write(ctx, r)
}

// Err is Next's.
func (a Auditor) Err() error { return a.Next.Err() }

// Activator counts each activation through it, by the kind of target and
// its result. The grant cache joins concurrent calls for one target into
// one activation, so this counts PIM requests, not calls.
type Activator struct {
	gate.Activator
	M *Metrics
}

// NewActivator wraps next.
func NewActivator(next gate.Activator, m *Metrics) Activator { return Activator{Activator: next, M: m} }

// Activate passes the call on and counts its result.
func (a Activator) Activate(ctx context.Context, req pim.Request, onStatus func(pim.Status)) (pim.Grant, error) {
	g, err := a.Activator.Activate(ctx, req, onStatus)
	a.M.activations.WithLabelValues(req.Kind.String(), activationStatus(err)).Inc()
	return g, err
}

// activationStatus names an activation's result from a bounded set.
func activationStatus(err error) string {
	switch {
	case err == nil:
		return "granted"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, pim.ErrNotEligible):
		return "not_eligible"
	case errors.Is(err, pim.ErrThrottled):
		return "throttled"
	case errors.Is(err, pim.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, pim.ErrAuth):
		return "auth_failed"
	}
	return "failed"
}
