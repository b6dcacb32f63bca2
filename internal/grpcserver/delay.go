package grpcserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// failureDelay holds failed Authenticate answers for auth_failure_delay
// (docs/protocol.md §1.7). Each waiting answer is a parked handler goroutine
// with a timer, so other RPCs, on the same connection or not, go on at
// full speed.
//
// As Dovecot's 500 ms flush timer does, release times are rounded up to a
// tick, so the answers of failures that finished within one tick leave
// together and their order tells an attacker nothing about which guess
// took longer in the backend.
type failureDelay struct {
	queued   atomic.Int64
	once     sync.Once
	released chan struct{} // closed on shutdown: answer everything owed at once
}

func newFailureDelay() *failureDelay {
	return &failureDelay{released: make(chan struct{})}
}

// tick is the flush granularity for delay: Dovecot's 500 ms, finer for
// short delays (the same rule as internal/dovecot's queue).
func tick(delay time.Duration) time.Duration {
	t := 500 * time.Millisecond
	if d := delay / 4; d < t {
		t = max(d, 10*time.Millisecond)
	}
	return t
}

// wait blocks for delay, rounded up to the next tick. It returns early,
// with nil, when the server shuts down, and with the RPC's status when the
// client gives up first.
func (f *failureDelay) wait(ctx context.Context, delay time.Duration) error {
	if delay <= 0 {
		return nil
	}
	now := time.Now()
	t := tick(delay)
	due := now.Add(delay).UnixNano()
	due += int64(t) - due%int64(t)
	f.queued.Add(1)
	defer f.queued.Add(-1)
	timer := time.NewTimer(time.Duration(due - now.UnixNano()))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-f.released:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// release lets every waiting and future answer go at once.
func (f *failureDelay) release() {
	f.once.Do(func() { close(f.released) })
}

// Len is the number of answers waiting.
func (f *failureDelay) Len() int { return int(f.queued.Load()) }
