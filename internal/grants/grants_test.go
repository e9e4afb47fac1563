package grants

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newCache(t *testing.T, clk Clock, mutate ...func(*Config)) *Cache {
	t.Helper()
	cfg := Config{Size: 16, Margin: 30 * time.Second, MaxBackground: 4, Lifetime: time.Hour, Recheck: 24 * time.Hour, Clock: clk}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// gate is an ActivateFunc that blocks until released, counting its runs and
// recording whether its context was cancelled.
type gate struct {
	runs      atomic.Int32
	release   chan Grant
	started   chan struct{}
	cancelled chan struct{}
}

func newGate() *gate {
	return &gate{release: make(chan Grant, 1), started: make(chan struct{}, 100), cancelled: make(chan struct{}, 100)}
}

func (g *gate) activate(ctx context.Context, report func(Progress)) (Grant, error) {
	g.runs.Add(1)
	report(Progress{RequestID: "req-1", Status: "PendingApproval"})
	g.started <- struct{}{}
	select {
	case gr := <-g.release:
		return gr, nil
	case <-ctx.Done():
		g.cancelled <- struct{}{}
		return Grant{}, ctx.Err()
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	clk := clock.NewFake(t0)
	ok := Config{Size: 1, Margin: time.Second, MaxBackground: 1, Lifetime: time.Minute, Recheck: time.Minute, Clock: clk}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"zero size", func(c *Config) { c.Size = 0 }},
		{"negative size", func(c *Config) { c.Size = -1 }},
		{"zero margin", func(c *Config) { c.Margin = 0 }},
		{"negative margin", func(c *Config) { c.Margin = -time.Second }},
		{"zero background bound", func(c *Config) { c.MaxBackground = 0 }},
		{"zero lifetime", func(c *Config) { c.Lifetime = 0 }},
		{"zero recheck", func(c *Config) { c.Recheck = 0 }},
		{"no clock", func(c *Config) { c.Clock = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("New rejected a good config: %v", err)
	}
}

func TestGrantLiveUntilMarginBeforeEnd(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p1", RoleID: "r1", Scope: "/"}
	g := newGate()
	g.release <- Grant{RequestID: "req-1", Start: t0, End: t0.Add(10 * time.Minute)}
	w := c.Join(k, g.activate)
	<-w.Done()
	w.Leave()
	if _, err := w.Result(); err != nil {
		t.Fatalf("Result: %v", err)
	}

	tests := []struct {
		at   time.Duration
		live bool
	}{
		{0, true},
		{9*time.Minute + 29*time.Second, true},
		{9*time.Minute + 30*time.Second, false}, // within the margin: no longer live
		{11 * time.Minute, false},
	}
	for _, tt := range tests {
		clk.Advance(t0.Add(tt.at).Sub(clk.Now()))
		if _, live := c.Live(k, nil); live != tt.live {
			t.Errorf("at +%v: Live = %v, want %v", tt.at, live, tt.live)
		}
	}
}

func TestGrantsAreKeyedByPrincipal(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	alice := Key{Principal: "alice", RoleID: "r1", Scope: "/"}
	bob := Key{Principal: "bob", RoleID: "r1", Scope: "/"}
	g := newGate()
	g.release <- Grant{End: t0.Add(time.Hour)}
	w := c.Join(alice, g.activate)
	<-w.Done()
	w.Leave()
	if _, ok := c.Live(alice, nil); !ok {
		t.Fatal("alice's grant is not live")
	}
	if _, ok := c.Live(bob, nil); ok {
		t.Fatal("bob is admitted by alice's grant")
	}
	// Bob's activation is his own, not a share of alice's.
	g2 := newGate()
	wb := c.Join(bob, g2.activate)
	<-g2.started
	if g2.runs.Load() != 1 {
		t.Fatalf("bob's activation ran %d times, want 1", g2.runs.Load())
	}
	wb.Leave()
	<-g2.cancelled
}

func TestConcurrentCallersShareOneActivation(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p", RoleID: "r", Scope: "/"}
	g := newGate()
	const n = 200
	waiters := make([]*Waiter, n)
	for i := range waiters {
		waiters[i] = c.Join(k, g.activate)
	}
	<-g.started
	if p, started, _ := waiters[n-1].Progress(); p.RequestID != "req-1" || !started.Equal(t0) {
		t.Fatalf("Progress = %+v, %v; want req-1 from %v", p, started, t0)
	}
	g.release <- Grant{RequestID: "req-1", End: t0.Add(time.Hour)}
	var wg sync.WaitGroup
	for _, w := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-w.Done()
			if gr, err := w.Result(); err != nil || gr.RequestID != "req-1" {
				t.Errorf("Result = %+v, %v", gr, err)
			}
			w.Leave()
		}()
	}
	wg.Wait()
	if got := g.runs.Load(); got != 1 {
		t.Fatalf("activation ran %d times for %d callers, want 1", got, n)
	}
}

func TestProgressSignalsEachReport(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	step := make(chan string)
	w := c.Join(Key{Principal: "p", RoleID: "r"}, func(ctx context.Context, report func(Progress)) (Grant, error) {
		for s := range step {
			report(Progress{RequestID: "req", Status: s})
		}
		return Grant{End: t0.Add(time.Hour)}, nil
	})
	defer w.Leave()
	for _, status := range []string{"PendingApproval", "Granted"} {
		_, _, next := w.Progress()
		step <- status
		<-next
		if p, _, _ := w.Progress(); p.Status != status {
			t.Fatalf("Progress().Status = %q, want %q", p.Status, status)
		}
	}
	close(step)
	<-w.Done()
}

func TestLastLeaverCancelsActivation(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p", RoleID: "r", Scope: "/"}
	g := newGate()
	w1 := c.Join(k, g.activate)
	w2 := c.Join(k, g.activate)
	<-g.started
	w1.Leave()
	select {
	case <-g.cancelled:
		t.Fatal("activation cancelled while another caller still waits")
	default:
	}
	w2.Leave()
	<-g.cancelled
	<-w2.Done()
	if _, err := w2.Result(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Result err = %v, want context.Canceled", err)
	}
	// A later caller starts a fresh activation instead of joining the dead one.
	g2 := newGate()
	w3 := c.Join(k, g2.activate)
	<-g2.started
	w3.Leave()
	<-g2.cancelled
}

func TestBackgroundKeepsActivationAndCachesGrant(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p", RoleID: "r", Scope: "/"}
	g := newGate()
	w := c.Join(k, g.activate)
	<-g.started
	if err := w.Background(); err != nil {
		t.Fatalf("Background: %v", err)
	}
	w.Leave() // a no-op after Background
	select {
	case <-g.cancelled:
		t.Fatal("background activation was cancelled")
	default:
	}
	// A second caller joins the same background activation.
	w2 := c.Join(k, g.activate)
	g.release <- Grant{End: t0.Add(time.Hour)}
	<-w2.Done()
	w2.Leave()
	if g.runs.Load() != 1 {
		t.Fatalf("activation ran %d times, want 1", g.runs.Load())
	}
	if _, ok := c.Live(k, nil); !ok {
		t.Fatal("grant from a background activation was not cached")
	}
}

func TestBackgroundIsBounded(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk, func(cfg *Config) { cfg.MaxBackground = 1 })
	g1, g2 := newGate(), newGate()
	w1 := c.Join(Key{Principal: "p", RoleID: "r1"}, g1.activate)
	w2 := c.Join(Key{Principal: "p", RoleID: "r2"}, g2.activate)
	<-g1.started
	<-g2.started
	if err := w1.Background(); err != nil {
		t.Fatalf("first Background: %v", err)
	}
	if err := w2.Background(); !errors.Is(err, ErrBackgroundFull) {
		t.Fatalf("second Background = %v, want ErrBackgroundFull", err)
	}
	w2.Leave()
	<-g2.cancelled
	// Once the first ends, its background slot is free again.
	g1.release <- Grant{End: t0.Add(time.Hour)}
	<-w1.Done()
	g3 := newGate()
	w3 := c.Join(Key{Principal: "p", RoleID: "r3"}, g3.activate)
	<-g3.started
	if err := w3.Background(); err != nil {
		t.Fatalf("Background after a slot freed: %v", err)
	}
	g3.release <- Grant{End: t0.Add(time.Hour)}
	<-w3.Done()
}

func TestLifetimeEndsActivation(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk, func(cfg *Config) { cfg.Lifetime = time.Nanosecond })
	g := newGate()
	w := c.Join(Key{Principal: "p", RoleID: "r"}, g.activate)
	if err := w.Background(); err != nil {
		t.Fatalf("Background: %v", err)
	}
	<-w.Done()
	if _, err := w.Result(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Result err = %v, want DeadlineExceeded", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk, func(cfg *Config) { cfg.Size = 2 })
	for _, role := range []string{"a", "b", "c"} {
		g := newGate()
		g.release <- Grant{End: t0.Add(time.Hour)}
		w := c.Join(Key{Principal: "p", RoleID: role}, g.activate)
		<-w.Done()
		w.Leave()
	}
	if _, ok := c.Live(Key{Principal: "p", RoleID: "a"}, nil); ok {
		t.Fatal("oldest grant kept beyond the size bound")
	}
	for _, role := range []string{"b", "c"} {
		if _, ok := c.Live(Key{Principal: "p", RoleID: role}, nil); !ok {
			t.Fatalf("grant %q evicted", role)
		}
	}
}

func TestFailedActivationIsNotCached(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p", RoleID: "r"}
	denied := errors.New("denied")
	w := c.Join(k, func(context.Context, func(Progress)) (Grant, error) { return Grant{}, denied })
	<-w.Done()
	w.Leave()
	if _, err := w.Result(); !errors.Is(err, denied) {
		t.Fatalf("Result err = %v, want %v", err, denied)
	}
	if _, ok := c.Live(k, nil); ok {
		t.Fatal("a failed activation left a live grant")
	}
}

// BenchmarkLiveHit is the cached path: a lookup, the clock, and no
// confirmation (none is due within the run).
func BenchmarkLiveHit(b *testing.B) {
	c, err := New(Config{Size: 1024, Margin: 30 * time.Second, MaxBackground: 1, Lifetime: time.Hour, Recheck: time.Minute, Clock: clock.Real{}})
	if err != nil {
		b.Fatal(err)
	}
	k := Key{Principal: "p", RoleID: "r", Scope: "/"}
	w := c.Join(k, func(context.Context, func(Progress)) (Grant, error) {
		return Grant{End: time.Now().Add(time.Hour)}, nil
	})
	<-w.Done()
	w.Leave()
	var confirms atomic.Int32
	confirm := func(context.Context, Key) (Grant, bool, error) {
		confirms.Add(1)
		return Grant{End: time.Now().Add(time.Hour)}, true, nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Live(k, confirm); !ok {
			b.Fatal("miss")
		}
	}
	b.ReportMetric(float64(confirms.Load()), "confirmations")
}

// An activation that finishes between a caller's Live (a miss) and its Join
// must not make Join start a second one: Join finds the grant under its lock.
func TestJoinAfterActivationFinishedSinceLiveStartsNone(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk)
	k := Key{Principal: "p1", RoleID: "r1", Scope: "/"}
	first := newGate()
	w1 := c.Join(k, first.activate)
	<-first.started
	if err := w1.Background(); err != nil {
		t.Fatal(err)
	}

	if _, live := c.Live(k, nil); live {
		t.Fatal("Live before the grant")
	}
	// The background activation finishes now, after the caller's Live.
	want := Grant{RequestID: "req-1", Start: t0, End: t0.Add(time.Hour)}
	first.release <- want
	<-w1.Done()

	second := newGate()
	w2 := c.Join(k, second.activate)
	defer w2.Leave()
	select {
	case <-w2.Done():
	default:
		t.Fatal("Join started waiting although the grant is live")
	}
	if got, err := w2.Result(); err != nil || got != want {
		t.Fatalf("Result = %+v, %v; want %+v", got, err, want)
	}
	if n := second.runs.Load(); n != 0 {
		t.Fatalf("a second activation ran (%d)", n)
	}
}

// confirmer is a ConfirmFunc that reports each call and answers what the
// test sends it.
type confirmer struct {
	calls   chan Key
	answers chan confirmAnswer
}

type confirmAnswer struct {
	g    Grant
	live bool
	err  error
}

func newConfirmer() *confirmer {
	return &confirmer{calls: make(chan Key, 16), answers: make(chan confirmAnswer, 1)}
}

func (f *confirmer) confirm(ctx context.Context, k Key) (Grant, bool, error) {
	f.calls <- k
	select {
	case a := <-f.answers:
		return a.g, a.live, a.err
	case <-ctx.Done():
		return Grant{}, false, ctx.Err()
	}
}

// waitFor polls cond, which reads state another goroutine is changing,
// until it holds; the bound only keeps a broken cache from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A cached grant admits calls for at most Recheck after Entra last showed
// it live. Half-way, Live has it confirmed once in the background; until
// then it asks nothing of Graph.
func TestRecheck(t *testing.T) {
	const recheck = time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name   string
		answer *confirmAnswer // nil: nobody confirms (Live is given no ConfirmFunc)
		// live says whether Live admits at each offset once the
		// confirmation (asked at +30s) has been answered.
		live map[time.Duration]bool
	}{
		{name: "no confirmation", live: map[time.Duration]bool{59 * time.Second: true, recheck: false}},
		{name: "still live", answer: &confirmAnswer{g: Grant{RequestID: "req-1", End: at(2 * time.Hour), Seen: at(30 * time.Second)}, live: true},
			live: map[time.Duration]bool{89 * time.Second: true, 90 * time.Second: false}},
		{name: "revoked", answer: &confirmAnswer{live: false},
			live: map[time.Duration]bool{31 * time.Second: false}},
		{name: "ended sooner", answer: &confirmAnswer{g: Grant{End: at(40 * time.Second)}, live: true},
			live: map[time.Duration]bool{31 * time.Second: false}},
		{name: "read failed", answer: &confirmAnswer{err: errors.New("graph down")},
			live: map[time.Duration]bool{59 * time.Second: true, recheck: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			c := newCache(t, clk, func(cfg *Config) { cfg.Recheck = recheck })
			k := Key{Principal: "p1", RoleID: "r1", Scope: "/"}
			g := newGate()
			g.release <- Grant{RequestID: "req-1", Start: t0, End: at(time.Hour)}
			w := c.Join(k, g.activate)
			<-w.Done()
			w.Leave()

			f := newConfirmer()
			var confirm ConfirmFunc
			if tt.answer != nil {
				confirm = f.confirm
			}
			// Before half of Recheck: admitted, and nothing asked of Graph.
			clk.Advance(29 * time.Second)
			for range 100 {
				if _, ok := c.Live(k, confirm); !ok {
					t.Fatal("not live at +29s")
				}
			}
			if len(f.calls) != 0 {
				t.Fatalf("%d confirmations before half of recheck", len(f.calls))
			}
			clk.Advance(time.Second)
			for range 100 {
				if _, ok := c.Live(k, confirm); !ok {
					t.Fatal("not live at +30s, while being confirmed")
				}
			}
			if tt.answer != nil {
				if got := <-f.calls; got != k {
					t.Fatalf("confirmed %+v, want %+v", got, k)
				}
				f.answers <- *tt.answer
				if tt.answer.err == nil {
					// Wait until the answer replaced or removed the entry.
					waitFor(t, "the confirmation to be applied", func() bool {
						c.mu.Lock()
						defer c.mu.Unlock()
						e, ok := c.lru.Peek(k)
						return !ok || e.seen != t0
					})
				}
			}
			for _, d := range []time.Duration{29 * time.Second, 31 * time.Second, 59 * time.Second, recheck, 89 * time.Second, 90 * time.Second} {
				want, ok := tt.live[d]
				if !ok {
					continue
				}
				clk.Advance(at(d).Sub(clk.Now()))
				if _, got := c.Live(k, nil); got != want {
					t.Errorf("at +%v: Live = %v, want %v", d, got, want)
				}
			}
			if tt.answer != nil && len(f.calls) != 0 {
				t.Errorf("%d more confirmations of one entry", len(f.calls))
			}
		})
	}
}

// A grant past Recheck is not a grant: Join starts an activation for it
// (which asks Entra whether the role is active) rather than reuse it.
func TestJoinDoesNotReuseAGrantPastRecheck(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk, func(cfg *Config) { cfg.Recheck = time.Minute })
	k := Key{Principal: "p1", RoleID: "r1", Scope: "/"}
	first := newGate()
	first.release <- Grant{RequestID: "req-1", Start: t0, End: t0.Add(time.Hour)}
	w := c.Join(k, first.activate)
	<-w.Done()
	w.Leave()
	clk.Advance(time.Minute)
	second := newGate()
	w = c.Join(k, second.activate)
	defer w.Leave()
	<-second.started
	if n := second.runs.Load(); n != 1 {
		t.Fatalf("%d activations, want 1", n)
	}
}

// TestHeldIsLiveWithoutSideEffects: Held answers as Live does, but counts
// no lookup and asks for no confirmation.
func TestHeldIsLiveWithoutSideEffects(t *testing.T) {
	clk := clock.NewFake(t0)
	c := newCache(t, clk, func(cfg *Config) { cfg.Recheck = 10 * time.Minute })
	k := Key{Principal: "p1", RoleID: "r1", Scope: "/"}
	if _, ok := c.Held(k); ok {
		t.Fatal("Held found a grant in an empty cache")
	}
	g := newGate()
	g.release <- Grant{RequestID: "req-1", Start: t0, End: t0.Add(time.Hour)}
	w := c.Join(k, g.activate)
	<-w.Done()
	w.Leave()
	_, hits0, misses0 := c.Stats() // Join looked once
	for _, tt := range []struct {
		at   time.Duration
		held bool
	}{
		{0, true},
		{9 * time.Minute, true},   // past half of Recheck: Live would confirm
		{10 * time.Minute, false}, // Recheck since Entra showed it: Live admits nothing
	} {
		clk.Advance(t0.Add(tt.at).Sub(clk.Now()))
		if gr, held := c.Held(k); held != tt.held || held && gr.RequestID != "req-1" {
			t.Errorf("at +%v: Held = %+v, %v, want held %v", tt.at, gr, held, tt.held)
		}
	}
	if _, hits, misses := c.Stats(); hits != hits0 || misses != misses0 {
		t.Fatalf("Held counted lookups: hits %d, misses %d, want %d, %d", hits, misses, hits0, misses0)
	}
}
