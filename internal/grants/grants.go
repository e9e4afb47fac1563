// Package grants remembers which PIM roles are active for which user, and
// makes sure that at most one activation per (principal, role, scope) is in
// flight however many calls want it. A remembered grant admits calls only
// until shortly before it ends and for at most Recheck after Entra last
// showed it live; it is re-confirmed in the background before then, so the
// calls of a busy user neither wait for Graph nor run on a revoked grant.
package grants

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Key identifies a grant. Grants are never shared across principals: one
// user's approval must not admit another.
type Key struct {
	Principal string // Entra object id of the user
	Kind      string // role, group or azureRole: what PIM activated
	RoleID    string // role definition id, or the group's object id
	Scope     string // "/" for directory roles, the Azure scope, or a group's access (member or owner)
}

// Grant is an active role assignment.
type Grant struct {
	RequestID string
	Start     time.Time
	End       time.Time
	// Seen is when Entra was last asked and showed the grant live; zero
	// means when the activation returned it.
	Seen time.Time
}

// Progress is what an activation last reported while it waits for approval.
type Progress struct {
	RequestID string
	Status    string
}

// ConfirmFunc reads k's grant from Entra again: live is false when Entra no
// longer shows it active (deactivated, revoked, ended). Grant.Seen is when
// the read was sent; zero means just before ConfirmFunc was called.
type ConfirmFunc func(ctx context.Context, k Key) (g Grant, live bool, err error)

// ActivateFunc runs one activation. It must stop, and withdraw any pending
// request, when ctx is cancelled: that happens once nobody wants the grant.
type ActivateFunc func(ctx context.Context, report func(Progress)) (Grant, error)

// Clock is the time source; tests pass a fake one.
type Clock interface {
	Now() time.Time
}

// Config sets a Cache's bounds.
type Config struct {
	// Size is how many grants are remembered at most (least recently used go first).
	Size int
	// Margin is how long before its end a grant stops counting as live, so that
	// no call is forwarded on a role about to lapse.
	Margin time.Duration
	// MaxBackground bounds the activations kept running with no caller waiting.
	MaxBackground int
	// Lifetime bounds how long one activation may run, waiting callers or not.
	Lifetime time.Duration
	// Recheck is how long a grant admits calls after Entra last showed it
	// live. Live has it confirmed again once half of that has passed.
	Recheck time.Duration
	Clock   Clock
}

// ErrBackgroundFull is returned by Waiter.Background when MaxBackground
// activations already run unattended.
var ErrBackgroundFull = errors.New("too many activations are already waiting for approval in the background")

// Cache holds live grants and the activations in flight.
type Cache struct {
	cfg Config
	// lru is safe for concurrent use on its own: Live reads it without mu.
	// Writes go under mu, so that a confirmation replaces only the entry it
	// confirmed.
	lru   *lru.Cache[Key, *entry]
	mu    sync.Mutex
	fly   map[Key]*flight
	bgNum int

	hits, misses atomic.Uint64 // Live's answers, for metrics
}

// entry is one remembered grant. It is never changed, only replaced, except
// for confirming, which makes sure one confirmation at most is asked per entry.
type entry struct {
	grant      Grant
	seen       time.Time // when Entra last showed the grant live
	confirming atomic.Bool
}

// New returns a Cache. It rejects a non-positive size, margin, background
// bound, lifetime or recheck, and a nil clock.
func New(cfg Config) (*Cache, error) {
	switch {
	case cfg.Size <= 0:
		return nil, fmt.Errorf("grants: size must be positive, got %d", cfg.Size)
	case cfg.Margin <= 0:
		return nil, fmt.Errorf("grants: margin must be positive, got %v", cfg.Margin)
	case cfg.MaxBackground <= 0:
		return nil, fmt.Errorf("grants: background bound must be positive, got %d", cfg.MaxBackground)
	case cfg.Lifetime <= 0:
		return nil, fmt.Errorf("grants: activation lifetime must be positive, got %v", cfg.Lifetime)
	case cfg.Recheck <= 0:
		return nil, fmt.Errorf("grants: recheck must be positive, got %v", cfg.Recheck)
	case cfg.Clock == nil:
		return nil, errors.New("grants: a clock is required")
	}
	l, err := lru.New[Key, *entry](cfg.Size)
	if err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	return &Cache{cfg: cfg, lru: l, fly: make(map[Key]*flight)}, nil
}

// Live returns the grant for k if it may admit a call now: its end, less
// the margin, is in the future, and Entra showed it live less than Recheck
// ago. Once half of Recheck has passed, it starts one confirmation with
// confirm (if not nil) in the background: a grant Entra still shows live is
// then admitting for another Recheck, one it no longer shows is forgotten.
// Live itself never waits for Graph.
func (c *Cache) Live(k Key, confirm ConfirmFunc) (Grant, bool) {
	e, ok := c.lru.Get(k)
	if !ok {
		c.misses.Add(1)
		return Grant{}, false
	}
	now := c.cfg.Clock.Now()
	if !c.admits(e, now) {
		c.misses.Add(1)
		return Grant{}, false
	}
	c.hits.Add(1)
	if confirm != nil && !now.Before(e.seen.Add(c.cfg.Recheck/2)) && e.confirming.CompareAndSwap(false, true) {
		go c.confirm(k, e, confirm)
	}
	return e.grant, true
}

// Held returns the grant for k if Live would admit a call on it now,
// without counting a lookup or starting a confirmation: for views of the
// cache that must not change what it does.
func (c *Cache) Held(k Key) (Grant, bool) {
	e, ok := c.lru.Peek(k)
	if !ok || !c.admits(e, c.cfg.Clock.Now()) {
		return Grant{}, false
	}
	return e.grant, true
}

// admits reports whether e may admit a call at now: its grant is live and
// Entra showed it live less than Recheck ago.
func (c *Cache) admits(e *entry, now time.Time) bool {
	return c.live(e.grant, now) && now.Before(e.seen.Add(c.cfg.Recheck))
}

// Stats returns the grants held now and how many lookups Live answered
// with a grant (hits) and without (misses) since New.
func (c *Cache) Stats() (entries int, hits, misses uint64) {
	return c.lru.Len(), c.hits.Load(), c.misses.Load()
}

func (c *Cache) live(g Grant, now time.Time) bool {
	return now.Before(g.End.Add(-c.cfg.Margin))
}

// confirm reads e's grant from Entra and replaces e with what it read, or
// forgets it when Entra no longer shows it live. A failed read leaves e as
// it is, to lapse Recheck after it was seen; the next call then activates
// afresh, which asks Entra whether the role is active.
func (c *Cache) confirm(k Key, e *entry, confirm ConfirmFunc) {
	// Past Recheck the entry admits nothing: the answer would be moot.
	sent := c.cfg.Clock.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.seen.Add(c.cfg.Recheck).Sub(sent))
	defer cancel()
	g, live, err := confirm(ctx, k)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.lru.Peek(k); !ok || cur != e {
		return // replaced meanwhile by a newer activation or confirmation
	}
	if !live {
		c.lru.Remove(k)
		return
	}
	c.add(k, g, sent)
}

// add remembers g for k, seen live at g.Seen or else at seen. c.mu is held.
func (c *Cache) add(k Key, g Grant, seen time.Time) {
	if !g.Seen.IsZero() {
		seen = g.Seen
	}
	c.lru.Add(k, &entry{grant: g, seen: seen})
}

// Join makes the caller a waiter on the activation for k, starting it with
// activate when none is in flight. When a grant for k became live since the
// caller's Live (an activation finished in between), the Waiter is done at
// once with that grant, so that no second activation starts. Every Join must
// be followed by exactly one Leave or successful Background on the returned
// Waiter.
func (c *Cache) Join(k Key, activate ActivateFunc) *Waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fly[k]
	if !ok {
		// run caches the grant as it drops its flight, under mu, so a
		// flight gone here has left its grant in the cache.
		if g, live := c.Live(k, nil); live {
			f = &flight{done: make(chan struct{}), updated: make(chan struct{}), cancel: func() {}, started: c.cfg.Clock.Now(),
				finished: true, grant: g}
			close(f.done)
			f.waiters++
			return &Waiter{c: c, k: k, f: f}
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Lifetime)
		f = &flight{done: make(chan struct{}), updated: make(chan struct{}), cancel: cancel, started: c.cfg.Clock.Now()}
		c.fly[k] = f
		go c.run(ctx, k, f, activate)
	}
	f.waiters++
	return &Waiter{c: c, k: k, f: f}
}

func (c *Cache) run(ctx context.Context, k Key, f *flight, activate ActivateFunc) {
	g, err := activate(ctx, func(p Progress) {
		c.mu.Lock()
		f.progress = p
		close(f.updated)
		f.updated = make(chan struct{})
		c.mu.Unlock()
	})
	f.cancel()
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	if err == nil && c.live(g, now) {
		c.add(k, g, now)
	}
	if c.fly[k] == f {
		delete(c.fly, k)
	}
	if f.background {
		c.bgNum--
	}
	f.finished = true
	f.grant, f.err = g, err
	c.mu.Unlock()
	close(f.done)
}

// flight is one activation in progress. Its fields other than done and
// cancel are guarded by Cache.mu.
type flight struct {
	done       chan struct{}
	cancel     context.CancelFunc
	started    time.Time
	waiters    int
	background bool
	finished   bool
	progress   Progress
	updated    chan struct{} // closed and replaced on every progress report
	grant      Grant
	err        error
}

// Waiter is one caller's stake in an activation.
type Waiter struct {
	c    *Cache
	k    Key
	f    *flight
	gone bool
}

// Done is closed when the activation has ended.
func (w *Waiter) Done() <-chan struct{} { return w.f.done }

// Result is the activation's outcome; call it after Done is closed.
func (w *Waiter) Result() (Grant, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.f.grant, w.f.err
}

// Progress is what the activation last reported, when it started, and a
// channel closed at its next report.
func (w *Waiter) Progress() (p Progress, started time.Time, next <-chan struct{}) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.f.progress, w.f.started, w.f.updated
}

// Leave says this caller no longer waits. When it was the last one and the
// activation is not kept in the background, the activation is cancelled, and
// a later Join starts afresh.
func (w *Waiter) Leave() {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.gone {
		return
	}
	w.gone = true
	f := w.f
	f.waiters--
	if f.waiters == 0 && !f.background {
		if w.c.fly[w.k] == f {
			delete(w.c.fly, w.k)
		}
		f.cancel()
	}
}

// Background hands this caller's stake to the background: the activation
// goes on until it ends or its lifetime runs out, so a later call can pick up
// the grant. It fails with ErrBackgroundFull when too many activations
// already run unattended; the caller must then Leave.
func (w *Waiter) Background() error {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.gone {
		return nil
	}
	f := w.f
	if !f.background && !f.finished {
		if w.c.bgNum >= w.c.cfg.MaxBackground {
			return ErrBackgroundFull
		}
		f.background = true
		w.c.bgNum++
	}
	w.gone = true
	f.waiters--
	return nil
}
