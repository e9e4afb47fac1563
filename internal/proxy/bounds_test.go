package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

func TestSessionTableExpiresIdleSessions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		live  bool
	}{
		{"used within the idle time", 59 * time.Second, true},
		{"used exactly at the idle time", time.Minute, true},
		{"idle too long", time.Minute + time.Nanosecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clock.NewFake(time.Unix(0, 0))
			tab := newSessionTable(c, time.Minute, 10, func(string) {})
			id := tab.Generate()
			c.Advance(tc.after)
			if got := use(tab, id); got != tc.live {
				t.Fatalf("use after %s = %v, want %v", tc.after, got, tc.live)
			}
			_, err := tab.Validate(id)
			if (err == nil) != tc.live {
				t.Fatalf("Validate after %s: err %v, want live %v", tc.after, err, tc.live)
			}
		})
	}
}

func TestSessionTableUseKeepsSessionAlive(t *testing.T) {
	c := clock.NewFake(time.Unix(0, 0))
	tab := newSessionTable(c, time.Minute, 10, func(string) {})
	id := tab.Generate()
	for range 5 {
		c.Advance(50 * time.Second)
		if !use(tab, id) {
			t.Fatal("a session used every 50s expired with a 1m idle time")
		}
	}
	if _, err := tab.Terminate(id); err != nil {
		t.Fatal(err)
	}
	if use(tab, id) {
		t.Fatal("a deleted session is still live")
	}
	if use(tab, "mcp-session-never-issued") {
		t.Fatal("an id never issued is live")
	}
}

// use makes one request of session id, reporting whether it was live.
func use(tab *sessionTable, id string) bool {
	leave, ok := tab.enter(id)
	if ok {
		leave()
	}
	return ok
}

// TestSessionTableRequestInFlightKeepsSessionAlive: idle time counts from
// the end of a session's last request; a request in flight (a call waiting
// for approval, an initialize waiting for its upstreams, a GET stream)
// holds the session however long it takes, and neither a sweep nor a
// later request expires it meanwhile.
func TestSessionTableRequestInFlightKeepsSessionAlive(t *testing.T) {
	c := clock.NewFake(time.Unix(0, 0))
	var expired []string
	tab := newSessionTable(c, time.Minute, 10, func(string) {})
	tab.expired = func(id string) { expired = append(expired, id) }
	var id string
	init := initializing{tab, &id}
	init.Generate() // an initialize in flight
	c.Advance(time.Hour)
	if swept := tab.sweep(c.Now()); len(swept) != 0 {
		t.Fatalf("swept %v during its initialize", swept)
	}
	tab.leave(id)
	leave, ok := tab.enter(id) // a call that waits an hour for approval
	if !ok {
		t.Fatal("a session expired the moment its initialize was answered")
	}
	c.Advance(time.Hour)
	if !use(tab, id) {
		t.Fatal("a session expired while its call was in flight")
	}
	leave()
	c.Advance(time.Minute)
	if !use(tab, id) {
		t.Fatal("idle time did not start at the end of the last request")
	}
	c.Advance(time.Minute + time.Nanosecond)
	if swept := tab.sweep(c.Now()); len(swept) != 1 || swept[0] != id {
		t.Fatalf("sweep after the idle time = %v, want [%s]", swept, id)
	}
	if len(expired) != 0 {
		t.Fatalf("sweep told expired %v itself; its caller does", expired)
	}
}

// TestSessionTableSweepsAbandonedSessions: with no request at all after
// them, abandoned sessions still go, and mcp-go's state of each with them.
func TestSessionTableSweepsAbandonedSessions(t *testing.T) {
	c := clock.NewFake(time.Unix(0, 0))
	forgotten := make(chan string, 3)
	expired := make(chan string, 3)
	tab := newSessionTable(c, time.Minute, 10, func(id string) { forgotten <- id })
	tab.expired = func(id string) { expired <- id }
	id := tab.Generate()
	ctx, cancel := context.WithCancel(t.Context())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() { tab.sweepOn(ctx, tick); close(done) }()
	for _, at := range []time.Duration{30 * time.Second, 60 * time.Second} {
		c.Advance(at - c.Now().Sub(time.Unix(0, 0)))
		tick <- c.Now()
	}
	c.Advance(30 * time.Second) // 90s: idle for longer than a minute
	select {
	case got := <-forgotten:
		t.Fatalf("%q forgotten before it was idle a minute", got)
	default:
	}
	tick <- c.Now()
	if got := <-forgotten; got != id {
		t.Fatalf("forgotten %q, want %q", got, id)
	}
	if got := <-expired; got != id {
		t.Fatalf("expired %q, want %q", got, id)
	}
	cancel()
	<-done
	if _, err := tab.Validate(id); err == nil {
		t.Fatal("an abandoned session is still valid")
	}
}

func TestSessionTableMaxSessions(t *testing.T) {
	c := clock.NewFake(time.Unix(0, 0))
	tab := newSessionTable(c, time.Minute, 2, func(string) {})
	var ids []string
	for range 2 {
		release, ok := tab.admit()
		if !ok {
			t.Fatal("refused below the maximum")
		}
		ids = append(ids, tab.Generate())
		release()
	}
	if _, ok := tab.admit(); ok {
		t.Fatal("admitted a third session with a maximum of 2")
	}
	// A reservation not followed by a session (a failed initialize) frees
	// its room when released.
	tab.Terminate(ids[0])
	release, ok := tab.admit()
	if !ok {
		t.Fatal("refused after a session was deleted")
	}
	if _, ok := tab.admit(); ok {
		t.Fatal("admitted beyond the maximum while a reservation is held")
	}
	release()
	release() // twice is harmless
	if release, ok = tab.admit(); !ok {
		t.Fatal("a released reservation still counts")
	}
	release()
	tab.Generate()
	if _, ok := tab.admit(); ok {
		t.Fatal("admitted a third session")
	}
	// Expired sessions make room.
	c.Advance(time.Minute + time.Second)
	if _, ok := tab.admit(); !ok {
		t.Fatal("expired sessions still count against the maximum")
	}
	if len(tab.last) != 0 {
		t.Fatalf("expired sessions kept: %d", len(tab.last))
	}
}

func TestLimitCallsPerPrincipal(t *testing.T) {
	started := make(chan struct{}, 8)
	unblock := make(chan struct{})
	next := func(ctx context.Context, c *Call) (Result, error) {
		started <- struct{}{}
		<-unblock
		return json.RawMessage(`{}`), nil
	}
	call := limitCalls(2, next)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := call(context.Background(), &Call{Principal: "alice"})
			done <- err
		}()
		<-started
	}
	_, err := call(context.Background(), &Call{Principal: "alice"})
	var rpc *RPCError
	if !errors.As(err, &rpc) || rpc.Code != CodeTooManyCalls {
		t.Fatalf("alice's third call: %v, want a CodeTooManyCalls error", err)
	}
	// Another principal is not held back by alice's calls.
	go func() {
		_, err := call(context.Background(), &Call{Principal: "bob"})
		done <- err
	}()
	<-started
	close(unblock)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Finished calls free their slots.
	if _, err := call(context.Background(), &Call{Principal: "alice"}); err != nil {
		t.Fatal(err)
	}
}
