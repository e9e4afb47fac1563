// Package ui serves mcp-gate's read-only approvals page: which calls wait
// for a PIM approval now (on which role, for how long, with which request),
// which grants are live and for whom, and what the gate decided lately. It
// keeps that state in a Board, fed by two hooks on the call path (the
// gate's Watch and the audit log's writes), and serves it as HTML, as JSON
// and as a server-sent event stream, to whoever its guard admits.
package ui

import (
	"slices"
	"sync"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/grants"
)

// DefaultDecided is how many decisions the board keeps.
const DefaultDecided = 200

// Clock is the time source; tests pass a fake one.
type Clock interface{ Now() time.Time }

// Activation is an activation a call waits on, as the board reads it;
// *grants.Waiter is one.
type Activation interface {
	Progress() (p grants.Progress, started time.Time, next <-chan struct{})
	Done() <-chan struct{}
	Result() (grants.Grant, error)
}

// BoardConfig holds a Board's dependencies.
type BoardConfig struct {
	Clock Clock
	// Held reads a grant from the grant cache while it admits calls
	// (grants.Cache.Held); nil: a grant is shown until it ends.
	Held func(grants.Key) (grants.Grant, bool)
	// Decided is how many decisions are kept; DefaultDecided when 0.
	Decided int
}

// Board is the state the page shows. It is safe for concurrent use.
type Board struct {
	cfg BoardConfig

	mu      sync.Mutex
	pending map[<-chan struct{}]*pending // by the activation's Done channel
	calls   map[string]*pending          // trace id of a waiting call -> what it waits on
	granted map[grants.Key]*held
	decided []Decided // oldest first, at most cfg.Decided
	changed chan struct{}
}

// target is what a rule activates, and for whom.
type target struct {
	Role      string `json:"role"`
	Kind      string `json:"kind"`
	Scope     string `json:"scope,omitempty"`
	Access    string `json:"access,omitempty"`
	Principal string `json:"principal,omitempty"`
}

// pending is one activation waiting for approval.
type pending struct {
	target
	key      grants.Key
	a        Activation
	since    time.Time
	progress grants.Progress
	calls    map[string]WaitingCall // by trace id
	receipts int
}

// held is one grant.
type held struct {
	target
	key   grants.Key
	grant grants.Grant
	calls int
}

// NewBoard returns an empty Board.
func NewBoard(cfg BoardConfig) *Board {
	if cfg.Decided <= 0 {
		cfg.Decided = DefaultDecided
	}
	return &Board{
		cfg:     cfg,
		pending: map[<-chan struct{}]*pending{},
		calls:   map[string]*pending{},
		granted: map[grants.Key]*held{},
		changed: make(chan struct{}),
	}
}

// Changed returns a channel closed at the board's next change.
func (b *Board) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// bump tells the watchers of Changed. b.mu is held.
func (b *Board) bump() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Waiting is the gate's Watch hook: the call rec waits on a, the
// activation of k. The returned func is called once the call is over.
func (b *Board) Waiting(k grants.Key, rec audit.Record, a Activation) (over func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	done := a.Done()
	p := b.pending[done]
	if p == nil {
		_, started, _ := a.Progress()
		p = &pending{target: targetOf(rec), key: k, a: a, since: started, calls: map[string]WaitingCall{}}
		b.pending[done] = p
		go b.follow(p)
	}
	p.calls[rec.TraceID] = WaitingCall{TraceID: rec.TraceID, Tool: rec.Tool, Since: b.cfg.Clock.Now()}
	b.calls[rec.TraceID] = p
	b.bump()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(p.calls, rec.TraceID)
		if b.calls[rec.TraceID] == p {
			delete(b.calls, rec.TraceID)
		}
		b.bump()
	}
}

func targetOf(r audit.Record) target {
	return target{Role: r.Role, Kind: r.Kind, Scope: r.Scope, Access: r.Access, Principal: r.Principal}
}

// follow tracks p's activation until it ends: each new status, then its
// grant or its end.
func (b *Board) follow(p *pending) {
	for {
		prog, _, next := p.a.Progress()
		b.mu.Lock()
		if prog != p.progress {
			p.progress = prog
			b.bump()
		}
		b.mu.Unlock()
		select {
		case <-next:
		case <-p.a.Done():
			b.mu.Lock()
			b.settle(p)
			b.mu.Unlock()
			return
		}
	}
}

// settle moves p, once its activation has ended, from waiting to granted
// (or nowhere, when it gave no grant). It does nothing before, or twice.
// b.mu is held.
func (b *Board) settle(p *pending) {
	done := p.a.Done()
	select {
	case <-done:
	default:
		return
	}
	if b.pending[done] != p {
		return
	}
	delete(b.pending, done)
	for id := range p.calls {
		if b.calls[id] == p {
			delete(b.calls, id)
		}
	}
	if g, err := p.a.Result(); err == nil {
		b.granted[p.key] = &held{target: p.target, key: p.key, grant: g}
	}
	b.prune()
	b.bump()
}

// prune forgets grants that no longer admit calls. b.mu is held.
func (b *Board) prune() {
	for k, h := range b.granted {
		if !b.live(h) {
			delete(b.granted, k)
		}
	}
}

// live reports whether h still admits calls, refreshing its grant from
// the cache (a re-confirmation may have moved its end). b.mu is held.
func (b *Board) live(h *held) bool {
	if b.cfg.Held != nil {
		g, ok := b.cfg.Held(h.key)
		if !ok || g.RequestID != h.grant.RequestID && g.RequestID != "" {
			return false
		}
		h.grant.End = g.End
		return true
	}
	return b.cfg.Clock.Now().Before(h.grant.End)
}

// Record is the audit hook: r was written to the audit log.
func (b *Board) Record(r audit.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.calls[r.TraceID]
	switch {
	case r.Outcome == audit.OutcomeReceipt && p != nil:
		p.receipts++
	case r.Outcome == audit.OutcomeAdmitted && r.RequestID != "":
		if p != nil {
			b.settle(p) // the gate may forward before follow has seen the grant
		}
		for _, h := range b.granted {
			if h.grant.RequestID == r.RequestID {
				h.calls++
			}
		}
	}
	b.decide(r)
	b.bump()
}

// decide adds r to the decisions, or completes the decision of its trace
// id with the upstream's outcome. b.mu is held.
func (b *Board) decide(r audit.Record) {
	if r.Outcome == audit.OutcomeForwarded || r.Outcome == audit.OutcomeError {
		for i := len(b.decided) - 1; i >= 0 && r.TraceID != ""; i-- {
			if d := &b.decided[i]; d.TraceID == r.TraceID && d.Outcome == audit.OutcomeAdmitted {
				d.Outcome, d.UpstreamMS, d.Message = r.Outcome, r.UpstreamMS, r.Message
				return
			}
		}
	}
	b.decided = append(b.decided, decidedOf(r))
	if over := len(b.decided) - b.cfg.Decided; over > 0 {
		b.decided = slices.Delete(b.decided, 0, over)
	}
}
