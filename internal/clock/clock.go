// Package clock gives the real clock and a fake one for tests, so that code
// that waits (polling backoff, grant expiry) can be tested without sleeping.
// Consumers declare the small interface they need; both types satisfy
// interfaces made of Now, After and NewTimer-free waits.
package clock

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Real is the system clock.
type Real struct{}

// Now returns the current time.
func (Real) Now() time.Time { return time.Now() }

// After waits for d and then sends the current time on the returned channel.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a clock that moves only when Advance or Set is called.
// The zero value is not usable; call NewFake.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // closed and replaced whenever a waiter is added
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a fake clock that reads t until moved.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, changed: make(chan struct{})}
}

// Now returns the fake current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that receives the fake time once the clock has
// been advanced by at least d. A non-positive d fires at once.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), ch: ch})
	close(f.changed)
	f.changed = make(chan struct{})
	return ch
}

// Advance moves the clock forward by d and fires every waiter that is due,
// earliest first.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- f.now
	}
	f.waiters = kept
}

// Waiters reports how many After calls are still pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n After calls are pending, so a test can
// advance the clock knowing the code under test is already waiting.
// It gives up and returns false when done is closed first.
func (f *Fake) BlockUntil(n int, done <-chan struct{}) bool {
	return f.blockUntil(done, func() bool { return len(f.waiters) >= n })
}

// BlockUntilDue returns once an After call due at exactly at is pending,
// so a test whose code under test has several waiters on one clock can
// advance it knowing the one it means is waiting. It gives up and returns
// false when done is closed first.
func (f *Fake) BlockUntilDue(at time.Time, done <-chan struct{}) bool {
	return f.blockUntil(done, func() bool {
		return slices.ContainsFunc(f.waiters, func(w waiter) bool { return w.at.Equal(at) })
	})
}

// blockUntil returns true once pending, called with f.mu held, holds.
func (f *Fake) blockUntil(done <-chan struct{}, pending func() bool) bool {
	for {
		f.mu.Lock()
		if pending() {
			f.mu.Unlock()
			return true
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}
