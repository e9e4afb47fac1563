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
			if got := tab.touch(id); got != tc.live {
				t.Fatalf("touch after %s = %v, want %v", tc.after, got, tc.live)
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
		if !tab.touch(id) {
			t.Fatal("a session used every 50s expired with a 1m idle time")
		}
	}
	if _, err := tab.Terminate(id); err != nil {
		t.Fatal(err)
	}
	if tab.touch(id) {
		t.Fatal("a deleted session is still live")
	}
	if tab.touch("mcp-session-never-issued") {
		t.Fatal("an id never issued is live")
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
