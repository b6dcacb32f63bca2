package dovecot

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// A step context nobody waits on has no timer, yet says what a context
// with a deadline says: its deadline, the connection's end, the
// sweeper's expiry; and Done and Err agree whenever the real context is
// made.
func TestStepContextLazy(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	deadline := time.Now().Add(time.Hour)
	c := newStepContext(parent, deadline)
	if d, ok := c.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	if c.Err() != nil || c.real.Load() != nil {
		t.Fatal("a fresh step context is done or has a real context")
	}
	c.expire()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("expired: Err = %v", c.Err())
	}
	// Made after the expiry (here: a deadline still an hour away), the
	// real context must not contradict Err: the sweeper expires only past
	// the deadline, so the real one made then is done at once.
	past := newStepContext(parent, time.Now().Add(-time.Millisecond))
	past.expire()
	select {
	case <-past.Done():
	default:
		t.Fatal("Done of an expired step context is not closed")
	}
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Fatalf("after Done: Err = %v", past.Err())
	}

	// The connection's end reaches an unmade and a made context alike.
	unmade := newStepContext(parent, deadline)
	made := newStepContext(parent, deadline)
	done := made.Done()
	cancelParent()
	if !errors.Is(unmade.Err(), context.Canceled) {
		t.Errorf("unmade after the connection ended: %v", unmade.Err())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("made context not cancelled with its connection")
	}
	made.release()
	unmade.release()
}

// The real context fires at the deadline, and contexts derived from a
// step context register with it instead of starting a goroutine each.
func TestStepContextDerived(t *testing.T) {
	c := newStepContext(context.Background(), time.Now().Add(50*time.Millisecond))
	defer c.release()
	before := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for range 100 {
		d, cancel := context.WithTimeout(context.WithValue(c, testKey{}, 1), time.Hour)
		cancels = append(cancels, cancel)
		if _, ok := d.Deadline(); !ok {
			t.Fatal("derived context lost the deadline")
		}
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("100 derived contexts started %d goroutines", n)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline did not end the context")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v", c.Err())
	}
	for _, cancel := range cancels {
		cancel()
	}
}

type testKey struct{}

func TestSweepInterval(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{8 * time.Second, 250 * time.Millisecond},
		{200 * time.Millisecond, 12500 * time.Microsecond},
		{time.Millisecond, time.Millisecond},
	} {
		if got := sweepInterval(tc.in); got != tc.want {
			t.Errorf("sweepInterval(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
