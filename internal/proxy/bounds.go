package proxy

import (
	"context"
	"fmt"
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
// other. A session idle for longer than idle is expired; at most max
// sessions (and legacy SSE streams) live at once.
type sessionTable struct {
	clock Clock
	idle  time.Duration
	max   int
	gen   server.StatelessGeneratingSessionIdManager
	// forgotten is told of each session deleted or expired, outside mu.
	forgotten func(id string)

	mu        sync.Mutex
	last      map[string]time.Time
	reserved  int // admitted initializes and SSE streams not yet in last
	lastSweep time.Time
}

func newSessionTable(c Clock, idle time.Duration, max int, forgotten func(id string)) *sessionTable {
	return &sessionTable{clock: c, idle: idle, max: max, forgotten: forgotten, last: make(map[string]time.Time), lastSweep: c.Now()}
}

// Generate issues a new session id, registered as used now.
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
	if !t.touch(id) {
		return false, fmt.Errorf("unknown session %q", id)
	}
	return false, nil
}

// Terminate forgets id (DELETE, or mcp-go's idle sweeper).
func (t *sessionTable) Terminate(id string) (bool, error) {
	t.mu.Lock()
	delete(t.last, id)
	t.mu.Unlock()
	t.forgotten(id)
	return false, nil
}

// touch marks id used now and reports whether it is a live session; an
// expired one is forgotten.
func (t *sessionTable) touch(id string) bool {
	now := t.clock.Now()
	t.mu.Lock()
	last, ok := t.last[id]
	expired := ok && now.Sub(last) > t.idle
	switch {
	case expired:
		delete(t.last, id)
	case ok:
		t.last[id] = now
	}
	t.mu.Unlock()
	if expired {
		t.forgotten(id)
	}
	return ok && !expired
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
		t.forgotten(id)
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

// sweep forgets expired sessions and returns them; t.mu is held.
func (t *sessionTable) sweep(now time.Time) []string {
	t.lastSweep = now
	var swept []string
	for id, last := range t.last {
		if now.Sub(last) > t.idle {
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
