package dovecot

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// delayQueue holds FAIL replies for auth_failure_delay without blocking
// anything else (docs/protocol.md §1.7). Like Dovecot it flushes in batches and
// shuffles each batch, so that the order of parallel guesses' answers says
// nothing about which finished first.
//
// It is a tarpit, and a tarpit holds memory by design: each reply is a
// line and a closure over its connection. held counts the replies waiting
// in every queue of the process, and past max a failure is answered at
// once (overflow is told), as gRPC's max_delayed_answers does: a flood
// then gets quick failures instead of filling memory, and the
// brute-force defence still counts every one.
type delayQueue struct {
	delay    time.Duration
	tick     time.Duration
	held     *atomic.Int64
	max      int64
	overflow func()

	mu      sync.Mutex
	entries []delayed
	wake    chan struct{}
	done    chan struct{}
	closed  bool
}

type delayed struct {
	at   time.Time
	send func()
}

// newDelayQueue returns a queue whose replies count in held, of which at
// most limit may wait.
func newDelayQueue(delay time.Duration, held *atomic.Int64, limit int, overflow func()) *delayQueue {
	tick := 500 * time.Millisecond
	if d := delay / 4; d < tick {
		tick = max(d, 10*time.Millisecond)
	}
	return &delayQueue{delay: delay, tick: tick, held: held, max: int64(limit), overflow: overflow,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues send to run at time at (a fixed time after the request
// arrived), at the first tick from then. After close it runs send at once:
// a shutting-down server answers everything it owes. So it does when the
// process holds its maximum of replies already.
func (q *delayQueue) add(at time.Time, send func()) {
	q.mu.Lock()
	if q.closed || !at.After(time.Now()) {
		q.mu.Unlock()
		send()
		return
	}
	if q.held.Add(1) > q.max {
		q.held.Add(-1)
		q.mu.Unlock()
		q.overflow()
		send()
		return
	}
	q.entries = append(q.entries, delayed{at: at, send: send})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len is the number of replies waiting.
func (q *delayQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// run flushes due entries until ctx ends, then flushes everything.
func (q *delayQueue) run(ctx context.Context) {
	defer close(q.done)
	t := time.NewTicker(q.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			q.flush(true)
			return
		case <-q.wake:
		case <-t.C:
			q.flush(false)
		}
	}
}

// close flushes everything and makes later adds immediate.
func (q *delayQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.flush(true)
}

func (q *delayQueue) flush(all bool) {
	now := time.Now()
	q.mu.Lock()
	var due []delayed
	keep := q.entries[:0]
	for _, e := range q.entries {
		if all || !e.at.After(now) {
			due = append(due, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(q.entries[len(keep):])
	q.entries = keep
	q.held.Add(-int64(len(due)))
	q.mu.Unlock()
	rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, e := range due {
		e.send()
	}
}
