package grpcserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// failureDelay holds Authenticate answers back: failures for
// auth_failure_delay (docs/protocol.md §1.7), and every answer of a
// client whose deadline ends before that delay (see auth.go). Each held
// answer is a parked handler goroutine with a timer, so other RPCs, on
// the same connection or not, go on at full speed.
//
// It is a tarpit, and a tarpit holds memory by design: at most limit
// answers wait at once (max_delayed_answers). Past that an answer leaves
// at once; a flood then gets quick failures instead of exhausting the
// process, and the brute-force defence still counts every one.
type failureDelay struct {
	limit    atomic.Int64
	queued   atomic.Int64
	skipped  atomic.Int64 // answers sent at once because the queue was full
	once     sync.Once
	released chan struct{} // closed on shutdown: answer everything owed at once
}

func newFailureDelay(limit int) *failureDelay {
	f := &failureDelay{released: make(chan struct{})}
	f.limit.Store(int64(limit))
	return f
}

// enter takes a place in the queue; false when it is full, and then the
// answer must leave at once.
func (f *failureDelay) enter() bool {
	if f.queued.Add(1) > f.limit.Load() {
		f.queued.Add(-1)
		f.skipped.Add(1)
		return false
	}
	return true
}

func (f *failureDelay) leave() { f.queued.Add(-1) }

// tick is the flush granularity for delay: Dovecot's 500 ms, finer for
// short delays (the same rule as internal/dovecot's queue).
func tick(delay time.Duration) time.Duration {
	t := 500 * time.Millisecond
	if d := delay / 4; d < t {
		t = max(d, 10*time.Millisecond)
	}
	return t
}

// roundUp moves a failure's release time to the next tick. As Dovecot's
// 500 ms flush timer does, the answers of failures that finished within
// one tick then leave together, and their order tells an attacker
// nothing about which guess took longer in the backend.
func roundUp(release time.Time) time.Time {
	t := int64(tick(time.Until(release)))
	due := release.UnixNano()
	return time.Unix(0, due+t-due%t)
}

// waitEnd says how a wait ended.
type waitEnd int

const (
	waitedFull   waitEnd = iota // until the time asked for
	waitSkipped                 // not at all: the queue was full
	waitReleased                // the server shuts down
)

// wait blocks until due. It returns early when the server shuts down, at
// once when the queue is full, and with the RPC's status when the client
// gives up first (nobody is left to answer).
func (f *failureDelay) wait(ctx context.Context, due time.Time) (waitEnd, error) {
	if !f.enter() {
		return waitSkipped, nil
	}
	defer f.leave()
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	select {
	case <-timer.C:
		return waitedFull, nil
	case <-f.released:
		return waitReleased, nil
	case <-ctx.Done():
		return 0, status.FromContextError(ctx.Err()).Err()
	}
}

// release lets every waiting and future answer go at once.
func (f *failureDelay) release() {
	f.once.Do(func() { close(f.released) })
}

// Len is the number of answers waiting.
func (f *failureDelay) Len() int { return int(f.queued.Load()) }
