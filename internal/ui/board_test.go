package ui

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/grants"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const (
	alice = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	bob   = "6a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"
)

// pim is an activation the test drives: it reports what it is told and
// ends with the grant or error it is given.
type pim struct {
	report chan grants.Progress
	end    chan result
}

type result struct {
	g   grants.Grant
	err error
}

func newPIM() *pim { return &pim{report: make(chan grants.Progress), end: make(chan result, 1)} }

func (p *pim) activate(ctx context.Context, report func(grants.Progress)) (grants.Grant, error) {
	for {
		select {
		case pr := <-p.report:
			report(pr)
		case r := <-p.end:
			return r.g, r.err
		case <-ctx.Done():
			return grants.Grant{}, ctx.Err()
		}
	}
}

// fixture is a board fed by a real grant cache on a fake clock.
type fixture struct {
	clk   *clock.Fake
	cache *grants.Cache
	board *Board
	log   *memLog
	audit Auditor
}

type memLog struct{ err error }

func (m *memLog) Write(context.Context, audit.Record) error { return m.err }
func (m *memLog) Err() error                                { return m.err }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := clock.NewFake(t0)
	cache, err := grants.New(grants.Config{Size: 16, Margin: 30 * time.Second, MaxBackground: 4, Lifetime: time.Hour, Recheck: time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBoard(BoardConfig{Clock: clk, Held: cache.Held, Decided: 3})
	m := &memLog{}
	return &fixture{clk: clk, cache: cache, board: b, log: m, audit: Auditor{Next: m, Board: b}}
}

// until waits for the board to satisfy ok, on its change signal.
func until(t *testing.T, b *Board, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := b.Changed()
		if st := b.State(Viewer{All: true}, Filter{}); ok(st) {
			return st
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("board never showed %s: %+v", what, b.State(Viewer{All: true}, Filter{}))
		}
	}
}

func call(principal, trace, tool string) audit.Record {
	return audit.Record{TraceID: trace, Principal: principal, Tool: tool, Decision: audit.DecisionActivate, Role: "Database Administrator", Kind: "role", Rule: "p.yaml:3"}
}

// TestWaitingThenGranted: a waiting call shows with its request and
// status; a receipt is counted; the grant replaces the waiting row and
// counts the calls made on it; the decisions are listed newest first,
// each forwarded call's two records as one.
func TestWaitingThenGranted(t *testing.T) {
	f := newFixture(t)
	k := grants.Key{Principal: alice, Kind: "role", RoleID: "r1", Scope: "/"}
	p := newPIM()
	w := f.cache.Join(k, p.activate)
	rec := call(alice, "t1", "delete_database")
	over := f.board.Waiting(k, rec, w)

	p.report <- grants.Progress{RequestID: "req-1", Status: "PendingApproval"}
	st := until(t, f.board, "the request id", func(st State) bool { return len(st.Waiting) == 1 && st.Waiting[0].RequestID == "req-1" })
	got := st.Waiting[0]
	if got.Status != "PendingApproval" || got.Role != "Database Administrator" || got.Principal != alice ||
		len(got.Calls) != 1 || got.Calls[0].Tool != "delete_database" || got.Links.Approve == "" {
		t.Fatalf("waiting row = %+v", got)
	}

	// The wait runs out: a receipt, and the activation goes on alone.
	rec.Outcome = audit.OutcomeReceipt
	rec.RequestID = "req-1"
	if err := f.audit.Write(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Background(); err != nil {
		t.Fatal(err)
	}
	over()
	st = f.board.State(Viewer{All: true}, Filter{})
	if len(st.Waiting) != 1 || st.Waiting[0].Receipts != 1 || len(st.Waiting[0].Calls) != 0 {
		t.Fatalf("after the receipt: %+v", st.Waiting)
	}

	p.end <- result{g: grants.Grant{RequestID: "req-1", Start: t0, End: t0.Add(time.Hour)}}
	st = until(t, f.board, "the grant", func(st State) bool { return len(st.Waiting) == 0 && len(st.Granted) == 1 })
	if g := st.Granted[0]; g.RequestID != "req-1" || !g.Until.Equal(t0.Add(time.Hour)) || g.Principal != alice {
		t.Fatalf("granted row = %+v", g)
	}

	// The next call runs on the cached grant: admitted, then forwarded.
	next := call(alice, "t2", "delete_database")
	next.RequestID, next.Outcome, next.WaitMS = "req-1", audit.OutcomeAdmitted, 3
	for _, r := range []audit.Record{next, {TraceID: "t2", Tool: "delete_database", Decision: audit.DecisionActivate, Outcome: audit.OutcomeForwarded, UpstreamMS: 7}} {
		if err := f.audit.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	st = f.board.State(Viewer{All: true}, Filter{})
	if st.Granted[0].Calls != 1 {
		t.Fatalf("calls on the grant = %d, want 1", st.Granted[0].Calls)
	}
	if len(st.Decided) != 2 || st.Decided[0].TraceID != "t2" || st.Decided[0].Outcome != audit.OutcomeForwarded ||
		st.Decided[0].WaitMS != 3 || st.Decided[0].UpstreamMS != 7 || st.Decided[1].Outcome != audit.OutcomeReceipt {
		t.Fatalf("decided = %+v", st.Decided)
	}

	// Once the cache no longer admits calls on it, the grant is gone.
	f.clk.Advance(time.Hour)
	if st := f.board.State(Viewer{All: true}, Filter{}); len(st.Granted) != 0 {
		t.Fatalf("an ended grant is still shown: %+v", st.Granted)
	}
}

// TestActivationWithoutGrant: an activation that ends without a grant
// (denied, cancelled) leaves the waiting view and shows nowhere else.
func TestActivationWithoutGrant(t *testing.T) {
	f := newFixture(t)
	k := grants.Key{Principal: alice, Kind: "role", RoleID: "r1", Scope: "/"}
	p := newPIM()
	w := f.cache.Join(k, p.activate)
	over := f.board.Waiting(k, call(alice, "t1", "delete_database"), w)
	until(t, f.board, "the waiting call", func(st State) bool { return len(st.Waiting) == 1 })
	p.end <- result{err: errors.New("denied")}
	<-w.Done()
	w.Leave()
	over()
	until(t, f.board, "nothing", func(st State) bool { return len(st.Waiting) == 0 && len(st.Granted) == 0 })
}

// TestDecidedIsBoundedAndFiltered: the board keeps its last N decisions;
// filters narrow them; a record the log refused is not shown.
func TestDecidedIsBoundedAndFiltered(t *testing.T) {
	f := newFixture(t) // keeps 3
	for i, r := range []audit.Record{
		{TraceID: "a", Tool: "read_table", Decision: audit.DecisionAllow, Outcome: audit.OutcomeAdmitted},
		{TraceID: "b", Tool: "crash", Decision: audit.DecisionDeny, Outcome: audit.OutcomeRefused},
		{TraceID: "c", Tool: "send_payment", Role: "Treasury", Decision: audit.DecisionActivate, Outcome: audit.OutcomeRefused},
		{TraceID: "d", Tool: "read_table", Decision: audit.DecisionAllow, Outcome: audit.OutcomeAdmitted},
	} {
		r.Time = t0.Add(time.Duration(i) * time.Second)
		if err := f.audit.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	f.log.err = errors.New("disk full")
	if err := f.audit.Write(context.Background(), audit.Record{TraceID: "e", Tool: "x", Decision: audit.DecisionAllow, Outcome: audit.OutcomeAdmitted}); err == nil {
		t.Fatal("the log's error was not passed on")
	}
	traces := func(ds []Decided) (out []string) {
		for _, d := range ds {
			out = append(out, d.TraceID)
		}
		return out
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, newest first, oldest dropped", Filter{}, []string{"d", "c", "b"}},
		{"tool", Filter{Tool: "read_table"}, []string{"d"}},
		{"role", Filter{Role: "Treasury"}, []string{"c"}},
		{"outcome", Filter{Outcome: audit.OutcomeRefused}, []string{"c", "b"}},
		{"trace", Filter{Trace: "b"}, []string{"b"}},
		{"nothing matches", Filter{Tool: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := traces(f.board.State(Viewer{All: true}, tt.f).Decided)
			if len(got) != len(tt.want) {
				t.Fatalf("decided = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("decided = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// TestViewerSeesOwnItems: without All a viewer sees only items of their
// principal; items of no principal are for All only.
func TestViewerSeesOwnItems(t *testing.T) {
	f := newFixture(t)
	for _, who := range []string{alice, bob} {
		k := grants.Key{Principal: who, Kind: "role", RoleID: "r1", Scope: "/"}
		f.board.Waiting(k, call(who, "w-"+who, "delete_database"), f.cache.Join(k, newPIM().activate))
		r := call(who, "d-"+who, "delete_database")
		r.Outcome = audit.OutcomeRefused
		if err := f.audit.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.audit.Write(context.Background(), audit.Record{TraceID: "anon", Tool: "read_table", Decision: audit.DecisionAllow, Outcome: audit.OutcomeAdmitted}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		v       Viewer
		waiting int
		decided int
	}{
		{"alice", Viewer{Principal: alice}, 1, 1},
		{"bob, in other case", Viewer{Principal: "6A1B2C3D-4E5F-4A6B-9C7D-8E9F0A1B2C3D"}, 1, 1},
		{"nobody", Viewer{}, 0, 0},
		{"admin", Viewer{Principal: bob, All: true}, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := f.board.State(tt.v, Filter{})
			if len(st.Waiting) != tt.waiting || len(st.Decided) != tt.decided {
				t.Fatalf("waiting %d, decided %d; want %d, %d", len(st.Waiting), len(st.Decided), tt.waiting, tt.decided)
			}
			for _, w := range st.Waiting {
				if !tt.v.All && w.Principal != tt.v.Principal && !tt.v.sees(w.Principal) {
					t.Fatalf("%s sees %s's waiting call", tt.v.Principal, w.Principal)
				}
			}
		})
	}
}
