package dovecot

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// delayQueue holds FAIL replies for auth_failure_delay without blocking
// anything else (docs/protocol.md §1.7). Like Dovecot it flushes in batches and
// shuffles each batch, so that the order of parallel guesses' answers says
// nothing about which finished first.
type delayQueue struct {
	delay time.Duration
	tick  time.Duration

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

func newDelayQueue(delay time.Duration) *delayQueue {
	tick := 500 * time.Millisecond
	if d := delay / 4; d < tick {
		tick = max(d, 10*time.Millisecond)
	}
	return &delayQueue{delay: delay, tick: tick, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues send to run at time at (a fixed time after the request
// arrived), at the first tick from then. After close it runs send at once:
// a shutting-down server answers everything it owes.
func (q *delayQueue) add(at time.Time, send func()) {
	q.mu.Lock()
	if q.closed || !at.After(time.Now()) {
		q.mu.Unlock()
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
	q.mu.Unlock()
	rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, e := range due {
		e.send()
	}
}
