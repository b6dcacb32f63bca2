package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// The verify queue. Password hashing is CPU-bound, so at most
// VerifyWorkers verifications run at once and the rest wait for a worker.
// An unbounded wait turns an overload into a pile-up: every request waits
// ever longer, holds its connection and its client, and is answered after
// the client gave up. So the wait is bounded in length and in time, and a
// verification past either bound is shed: the request is a temporary
// failure ("could not tell", never a wrong password, never cached, never
// counted by the brute-force defence), counted (Observer.VerifyShed) and
// logged at most once a second.
//
// Schemes that are a byte comparison (PLAIN) never queue.

// ErrVerifyShed is the error of a verification that was not made because
// the verify workers were overloaded.
var ErrVerifyShed = errors.New("password verification shed: the verify workers are overloaded")

// Why a verification was shed: the label values of Observer.VerifyShed.
const (
	ShedQueueFull = "queue_full" // VerifyQueue verifications were waiting already
	ShedWait      = "wait"       // no worker came free within VerifyWait
)

// ShedReasons lists the values Observer.VerifyShed is called with.
func ShedReasons() []string { return []string{ShedQueueFull, ShedWait} }

// Defaults of Settings.VerifyQueue and Settings.VerifyWait.
//
// The wait: the client socket's request deadline, 8 s, the patience of
// Postfix (10 s) less a margin, which is the shortest any client has. A
// login that could not get a CPU within it is one the most impatient
// client no longer waits for; login processes (30 s) and gRPC callers
// would only be held longer for an answer that comes too late to help,
// while the line behind them grows. Shorter sheds logins that a server
// busy for a moment still serves in time: on a loaded machine, twelve
// bcrypt logins arriving at once on two cores waited more than 4 s, and
// were answered within their deadline. On the client socket the
// request's own deadline, counted from its arrival, comes first, so the
// wait bound changes nothing there.
//
// The length: 1,024 per worker is what the workers clear in about a
// second and a half of Dovecot's default scheme, SHA512-CRYPT at 5,000
// rounds (about 1.3 ms a verify on one core of the reference machine). A
// line that long means logins arrive faster than the CPUs can hash them,
// and a longer one only adds waiting to every login in it; a parked
// request also holds its memory and its client. For slow hashes (bcrypt
// cost 10, about 60 ms a verify) the wait bound sheds first.
const (
	DefaultVerifyQueuePerWorker = 1024
	DefaultVerifyWait           = 8 * time.Second
)

// verifyQueue bounds the verifications running (the semaphore's size)
// and those waiting for a worker (how many, how long).
type verifyQueue struct {
	sem        *semaphore.Weighted
	workers    int
	waiting    atomic.Int64
	maxWaiting int64
	maxWait    time.Duration
}

func newVerifyQueue(workers, maxWaiting int, maxWait time.Duration) *verifyQueue {
	if maxWaiting <= 0 {
		maxWaiting = DefaultVerifyQueuePerWorker * workers
	}
	if maxWait <= 0 {
		maxWait = DefaultVerifyWait
	}
	return &verifyQueue{sem: semaphore.NewWeighted(int64(workers)), workers: workers, maxWaiting: int64(maxWaiting), maxWait: maxWait}
}

// acquire takes a worker. shed names the bound that refused one
// (ShedQueueFull, ShedWait; err wraps ErrVerifyShed); otherwise a non-nil
// err is ctx's: the request itself ended while waiting.
func (q *verifyQueue) acquire(ctx context.Context) (shed string, err error) {
	if q.sem.TryAcquire(1) {
		return "", nil
	}
	if q.waiting.Add(1) > q.maxWaiting {
		q.waiting.Add(-1)
		return ShedQueueFull, fmt.Errorf("%w: %d verifications waiting already", ErrVerifyShed, q.maxWaiting)
	}
	defer q.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, q.maxWait)
	defer cancel()
	if err := q.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return ShedWait, fmt.Errorf("%w: no worker free within %v", ErrVerifyShed, q.maxWait)
	}
	return "", nil
}

func (q *verifyQueue) release() { q.sem.Release(1) }

// takeVerifyWorker acquires a verify worker for the request, counting and
// logging a shed one; the caller releases it (e.verifies.release).
func (e *Engine) takeVerifyWorker(ctx context.Context) error {
	shed, err := e.verifies.acquire(ctx)
	if shed != "" {
		e.noteShed(shed)
	}
	return err
}

// noteShed counts a shed verification and logs it at most once a second
// (a flood sheds thousands).
func (e *Engine) noteShed(reason string) {
	e.obs.VerifyShed(reason)
	q := e.verifies
	e.shedLog.Log(e.log, slog.LevelWarn, "password verification shed: the verify workers are overloaded; answering with a temporary failure",
		"reason", reason, "workers", q.workers, "max_waiting", q.maxWaiting, "max_wait", q.maxWait.String())
}
