package proxy

import (
	"sync/atomic"
	"testing"
	"time"
)

// The tracker runs every request, keeps its goroutines for the next ones,
// yet closeAndWait returns as soon as the running requests have: idle
// goroutines leave at once, and nothing starts after.
func TestTrackerRunsEveryRequestAndClosesPromptly(t *testing.T) {
	tr := newTracker()
	var ran atomic.Int64
	release := make(chan struct{})
	done := make(chan struct{}, 100)
	for range 3 { // held: three goroutines
		tr.Go(func() {
			<-release
			ran.Add(1)
			done <- struct{}{}
		})
	}
	close(release)
	for range 3 {
		<-done
	}
	for range 50 { // one at a time: served by the idle ones
		tr.Go(func() {
			ran.Add(1)
			done <- struct{}{}
		})
		<-done
	}

	start := time.Now()
	tr.closeAndWait()
	if waited := time.Since(start); waited >= trackerIdle {
		t.Errorf("closeAndWait took %v: it waited for idle goroutines to time out", waited)
	}
	tr.Go(func() { ran.Add(1) })
	if got := ran.Load(); got != 53 {
		t.Errorf("%d requests ran, want 53 (and none after close)", got)
	}
}
