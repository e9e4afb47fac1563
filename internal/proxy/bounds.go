package proxy

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// Defaults of the HTTP front's bounds (Options).
const (
	DefaultSessionIdle      = 30 * time.Minute
	DefaultMaxSessions      = 10000
	DefaultMaxCallsInFlight = 1024
	DefaultBodyTimeout      = 30 * time.Second
)

// CodeTooManyCalls is the JSON-RPC error code of a call refused because its
// principal already has Options.MaxCallsInFlight calls in flight (an
// implementation-defined server error, -32000 to -32099).
const CodeTooManyCalls = -32029

// sessionTable is the Streamable HTTP sessions the gate has issued, with
// when each was last used: as mcp-go's SessionIdManager it registers the
// ids mcp-go generates at initialize, forgets them on DELETE and knows no
// other. A session is idle from the end of its last request: one with a
// request in flight (a call waiting for approval, a GET stream) never
// expires, however long that takes. A session idle for longer than idle is
// expired; at most max sessions (and legacy SSE streams) live at once.
type sessionTable struct {
	clock Clock
	idle  time.Duration
	max   int
	gen   server.StatelessGeneratingSessionIdManager
	// forgotten is told of each session deleted or expired, outside mu;
	// expired only of those the table expired, so that mcp-go's state of
	// them goes too.
	forgotten, expired func(id string)

	mu        sync.Mutex
	last      map[string]time.Time
	inflight  map[string]int
	reserved  int // admitted initializes and SSE streams not yet in last
	lastSweep time.Time
}

func newSessionTable(c Clock, idle time.Duration, max int, forgotten func(id string)) *sessionTable {
	return &sessionTable{clock: c, idle: idle, max: max, forgotten: forgotten, expired: func(string) {},
		last: make(map[string]time.Time), inflight: make(map[string]int), lastSweep: c.Now()}
}

// openedKey carries, in an initialize request's context, where the id
// mcp-go generates for it is written: the initialize is the new session's
// first request in flight.
type openedKey struct{}

// ResolveSessionIdManager gives mcp-go the table, one that remembers which
// session an initialize opened.
func (t *sessionTable) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if opened, ok := r.Context().Value(openedKey{}).(*string); ok {
		return initializing{t, opened}
	}
	return t
}

type initializing struct {
	*sessionTable
	opened *string
}

// Generate issues the initialize's session, in flight until it is answered.
func (i initializing) Generate() string {
	id := i.gen.Generate()
	i.mu.Lock()
	i.last[id] = i.clock.Now()
	i.inflight[id]++
	i.mu.Unlock()
	*i.opened = id
	return id
}

// Generate issues a session id outside an initialize's request; mcp-go
// generates them only there, so this is the same without the in-flight mark.
func (t *sessionTable) Generate() string {
	id := t.gen.Generate()
	t.mu.Lock()
	t.last[id] = t.clock.Now()
	t.mu.Unlock()
	return id
}

// Validate refuses an id the table does not hold (never issued, deleted or
// expired): mcp-go answers it 404, and the client initializes anew.
func (t *sessionTable) Validate(id string) (bool, error) {
	t.mu.Lock()
	_, ok := t.last[id]
	t.mu.Unlock()
	if !ok {
		return false, fmt.Errorf("unknown session %q", id)
	}
	return false, nil
}

// Terminate forgets id (DELETE).
func (t *sessionTable) Terminate(id string) (bool, error) {
	t.mu.Lock()
	_, ok := t.last[id]
	delete(t.last, id)
	t.mu.Unlock()
	if ok {
		t.forgotten(id)
	}
	return false, nil
}

// enter marks a request of session id in flight and returns the leave to
// call when it is over, or false when id is not a live session; an expired
// one is forgotten.
func (t *sessionTable) enter(id string) (leave func(), ok bool) {
	now := t.clock.Now()
	t.mu.Lock()
	last, ok := t.last[id]
	expired := ok && t.inflight[id] == 0 && now.Sub(last) > t.idle
	switch {
	case expired:
		delete(t.last, id)
	case ok:
		t.last[id] = now
		t.inflight[id]++
	}
	t.mu.Unlock()
	if expired {
		t.forget(id)
	}
	if !ok || expired {
		return nil, false
	}
	return sync.OnceFunc(func() { t.leave(id) }), true
}

// leave ends one of id's requests; its idle time starts now.
func (t *sessionTable) leave(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inflight[id]--; t.inflight[id] <= 0 {
		delete(t.inflight, id)
	}
	if _, ok := t.last[id]; ok {
		t.last[id] = t.clock.Now()
	}
}

func (t *sessionTable) forget(id string) {
	t.forgotten(id)
	t.expired(id)
}

// admit reserves room for one more session (an initialize, an SSE stream)
// and returns the release to call once the request is over, or false when
// max sessions are live.
func (t *sessionTable) admit() (func(), bool) {
	now := t.clock.Now()
	t.mu.Lock()
	var swept []string
	if len(t.last)+t.reserved >= t.max || now.Sub(t.lastSweep) > t.idle/2 {
		swept = t.sweep(now)
	}
	full := len(t.last)+t.reserved >= t.max
	if !full {
		t.reserved++
	}
	t.mu.Unlock()
	for _, id := range swept {
		t.forget(id)
	}
	if full {
		return nil, false
	}
	return sync.OnceFunc(func() {
		t.mu.Lock()
		t.reserved--
		t.mu.Unlock()
	}), true
}

// sweepOn expires idle sessions at each tick until ctx ends, so that
// abandoned sessions go even when no new one arrives. The ticks are real
// time (sweepEvery); what is idle is decided on the table's clock.
func (t *sessionTable) sweepOn(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		t.mu.Lock()
		swept := t.sweep(t.clock.Now())
		t.mu.Unlock()
		for _, id := range swept {
			t.forget(id)
		}
	}
}

// sweepEvery sweeps every half idle time (at least every second).
func (t *sessionTable) sweepEvery(ctx context.Context) {
	tick := time.NewTicker(max(t.idle/2, time.Second))
	defer tick.Stop()
	t.sweepOn(ctx, tick.C)
}

// sweep forgets expired sessions and returns them; t.mu is held.
func (t *sessionTable) sweep(now time.Time) []string {
	t.lastSweep = now
	var swept []string
	for id, last := range t.last {
		if t.inflight[id] == 0 && now.Sub(last) > t.idle {
			delete(t.last, id)
			swept = append(swept, id)
		}
	}
	return swept
}

// callLimiter bounds each principal's calls in flight.
type callLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// limitCalls wraps next so that a principal with max calls in flight has
// its next one refused, not queued: the caller learns at once, and one
// user cannot hold the gate's goroutines and upstream slots from others.
func limitCalls(max int, next CallFunc) CallFunc {
	l := &callLimiter{max: max, n: make(map[string]int)}
	return func(ctx context.Context, c *Call) (Result, error) {
		if !l.acquire(c.Principal) {
			return nil, errTooManyCalls(max)
		}
		defer l.release(c.Principal)
		return next(ctx, c)
	}
}

func errTooManyCalls(max int) *RPCError {
	return &RPCError{Code: CodeTooManyCalls, Message: fmt.Sprintf("Too many calls in flight: you already have %d calls running through the gate; wait for one to finish and retry", max)}
}

func (l *callLimiter) acquire(principal string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[principal] >= l.max {
		return false
	}
	l.n[principal]++
	return true
}

func (l *callLimiter) release(principal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[principal]--; l.n[principal] == 0 {
		delete(l.n, principal) // the map holds only principals with calls
	}
}
