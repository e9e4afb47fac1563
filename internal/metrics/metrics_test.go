package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/gate"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

type sink struct{ n int }

func (s *sink) Write(context.Context, audit.Record) error { s.n++; return nil }
func (s *sink) Err() error                                { return nil }

func TestAuditorCountsFinalRecords(t *testing.T) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	a := Auditor{Next: s, M: m}
	records := []audit.Record{
		{Decision: audit.DecisionActivate, Outcome: audit.OutcomeAdmitted, Upstream: "db"},
		{Decision: audit.DecisionActivate, Outcome: audit.OutcomeForwarded, Upstream: "db", WaitMS: 2000, UpstreamMS: 30},
		{Decision: audit.DecisionAllow, Outcome: audit.OutcomeForwarded, Upstream: "db", UpstreamMS: 5},
		{Decision: audit.DecisionDeny, Outcome: audit.OutcomeRefused},
	}
	for _, r := range records {
		if err := a.Write(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if s.n != len(records) {
		t.Errorf("%d records reached the log, want %d", s.n, len(records))
	}
	for _, c := range []struct {
		decision, outcome string
		want              float64
	}{
		{"activate", "forwarded", 1}, {"activate", "admitted", 0}, {"allow", "forwarded", 1}, {"deny", "refused", 1},
	} {
		if got := testutil.ToFloat64(m.calls.WithLabelValues(c.decision, c.outcome)); got != c.want {
			t.Errorf("calls{%s,%s} = %v, want %v", c.decision, c.outcome, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.approvalWait); n != 1 {
		t.Errorf("approval wait series = %d, want 1", n)
	}
}

type fakeActivator struct {
	gate.Activator
	err error
}

func (f fakeActivator) Activate(context.Context, pim.Request, func(pim.Status)) (pim.Grant, error) {
	return pim.Grant{}, f.err
}

func TestActivatorCountsByStatus(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "granted"},
		{fmt.Errorf("wrapped: %w", pim.ErrThrottled), "throttled"},
		{pim.ErrNotEligible, "not_eligible"},
		{context.Canceled, "cancelled"},
		{errors.New("something else"), "failed"},
	}
	for _, tt := range tests {
		m, err := New(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		a := NewActivator(fakeActivator{err: tt.err}, m)
		_, _ = a.Activate(t.Context(), pim.Request{Target: policy.Target{Kind: policy.KindGroup}}, nil)
		if got := testutil.ToFloat64(m.activations.WithLabelValues("group", tt.want)); got != 1 {
			t.Errorf("%v: activations{%s} = %v, want 1", tt.err, tt.want, got)
		}
	}
}

func TestGraphStatus(t *testing.T) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{200, 429, 429, 0} {
		m.GraphStatus(code)
	}
	for code, want := range map[string]float64{"200": 1, "429": 2, "0": 1} {
		if got := testutil.ToFloat64(m.graph.WithLabelValues(code)); got != want {
			t.Errorf("graph{%s} = %v, want %v", code, got, want)
		}
	}
}
