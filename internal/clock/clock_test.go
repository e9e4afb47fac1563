package clock

import (
	"testing"
	"time"
)

func TestFakeFiresWaitersInOrderWhenDue(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := NewFake(start)
	late := f.After(2 * time.Second)
	early := f.After(time.Second)
	if got := f.Waiters(); got != 2 {
		t.Fatalf("Waiters() = %d, want 2", got)
	}
	f.Advance(1500 * time.Millisecond)
	select {
	case got := <-early:
		if want := start.Add(1500 * time.Millisecond); !got.Equal(want) {
			t.Fatalf("early fired at %v, want %v", got, want)
		}
	default:
		t.Fatal("early waiter did not fire after its deadline")
	}
	select {
	case <-late:
		t.Fatal("late waiter fired before its deadline")
	default:
	}
	f.Advance(time.Second)
	select {
	case <-late:
	default:
		t.Fatal("late waiter did not fire")
	}
	if got := f.Waiters(); got != 0 {
		t.Fatalf("Waiters() = %d after all fired, want 0", got)
	}
}

func TestFakeNonPositiveAfterFiresAtOnce(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) did not fire at once")
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	go func() { <-f.After(time.Minute) }()
	if !f.BlockUntil(1, nil) {
		t.Fatal("BlockUntil gave up")
	}
	done := make(chan struct{})
	close(done)
	if f.BlockUntil(2, done) {
		t.Fatal("BlockUntil(2) returned true with one waiter")
	}
	f.Advance(time.Minute)
}
